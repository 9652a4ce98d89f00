// Package signer is the authenticator's ECDSA P-256 signing path, made fast
// by nonce precomputation.
//
// A signature needs a fresh nonce k, the point k·G and k⁻¹ mod n; all three
// are independent of the key and the message. A background refiller computes
// (k⁻¹, r = x(k·G) mod n) pairs ahead of time, so the request path only
// computes s = k⁻¹(e + r·d) mod n: two modular multiplications, well under
// a microsecond against tens of microseconds for a full signature.
//
// Safety rules, because a pair plus one signature reveals the private key:
// k comes from crypto/rand (WithRand exists for tests only); pairs live only
// in this process's memory, are taken out of the pool exactly once and wiped
// by the taker; the pool is wiped on Close; nothing about k is logged, and
// Stats exposes counts only. Arithmetic on secrets is constant time: bigmod
// for the request path and the key, a fixed 4-limb Montgomery routine for
// the refiller's inversions (see ordElement), nistec for k·G.
//
// When the pool is empty the signer computes a pair inline (less than a
// stdlib signature's cost), so it never blocks and never reuses a pair.
//
// Tuning (defaults, measured on the 2-core dev machine): the pool holds 256
// pairs (16 KiB) and is refilled when it falls to half, in batches of 32. A
// pair costs ~18 µs, almost all of it nistec's ScalarBaseMult and affine x;
// batching shares the inversion (~10 µs) via Montgomery's trick: per pair
// ~50 µs at batch 1, ~33 µs at 8, ~18 µs at 32, no better at 128, so 32 is
// the knee, and a larger batch only holds more secrets in scratch. A batch is
// ~0.6 ms of CPU and the refiller yields between batches, so it cannot
// starve requests; half a pool (128 signatures) absorbs a burst while the
// refiller catches up. Under flat-out load about a third of signatures miss
// and compute inline, which is still cheaper than a stdlib signature.
//
// Low-S is not normalised: WebAuthn and U2F verifiers accept either s, real
// security keys and crypto/ecdsa emit both, and an authenticator whose every
// signature has low S would be distinguishable from hardware.
package signer

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// Defaults for the pool; see the package comment for why.
const (
	DefaultPoolSize  = 256
	DefaultBatchSize = 32
)

// ErrNoKey reports a nil key passed to Sign.
var ErrNoKey = errors.New("signer: no private key")

type config struct {
	poolSize  int
	batchSize int
	rand      io.Reader
}

// Option configures New.
type Option func(*config)

// WithPoolSize sets how many pairs are kept ready; 0 disables the pool and
// its goroutine, so every signature computes its pair inline.
func WithPoolSize(n int) Option { return func(c *config) { c.poolSize = max(n, 0) } }

// WithBatchSize sets how many pairs the refiller computes per inversion.
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = max(n, 1) } }

// WithRand replaces crypto/rand as the nonce source. For tests only: a
// predictable reader leaks the key. The reader must be safe for concurrent use.
func WithRand(r io.Reader) Option { return func(c *config) { c.rand = r } }

// Stats are counters for tests and the control API.
type Stats struct {
	Hits     uint64 // signatures that took a precomputed pair
	Misses   uint64 // signatures that computed their pair inline
	Refilled uint64 // pairs the refiller and Fill added to the pool
	Pooled   int    // pairs ready now
}

// Signer makes ECDSA P-256 signatures from a pool of precomputed nonces. It is
// safe for concurrent use. Create it with New and stop it with Close.
type Signer struct {
	rand      io.Reader
	size      int
	batchSize int
	lowWater  int
	pool      *pool
	wake      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	hits, misses, refilled atomic.Uint64
}

// New starts a signer and its refiller, which begins filling the pool at
// once. Call Fill to wait for a full pool.
func New(opts ...Option) *Signer {
	c := config{poolSize: DefaultPoolSize, batchSize: DefaultBatchSize, rand: rand.Reader}
	for _, o := range opts {
		o(&c)
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	s := &Signer{
		rand:      c.rand,
		size:      c.poolSize,
		batchSize: max(min(c.batchSize, c.poolSize), 1),
		lowWater:  c.poolSize / 2,
		pool:      newPool(c.poolSize),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if s.size > 0 {
		s.wg.Add(1)
		go s.refill()
		s.kick()
	}
	return s
}

// Close stops the refiller, waits for it to exit and wipes the pool. It is
// idempotent. Sign keeps working afterwards, computing every pair inline.
func (s *Signer) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		s.pool.close()
	})
}

// Stats returns the current counters.
func (s *Signer) Stats() Stats {
	return Stats{
		Hits:     s.hits.Load(),
		Misses:   s.misses.Load(),
		Refilled: s.refilled.Load(),
		Pooled:   s.pool.level(),
	}
}

// Fill tops the pool up to capacity in the calling goroutine, for a warm start.
func (s *Signer) Fill() error {
	b := newBatch(s.batchSize)
	defer b.wipe()
	return s.fillFrom(b, func() bool { return false })
}

// Format keeps fmt from walking into the pool.
func (s *Signer) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "signer.Signer(pool=%d)", s.size)
}

// kick wakes the refiller without ever blocking the caller.
func (s *Signer) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Signer) refill() {
	defer s.wg.Done()
	b := newBatch(s.batchSize)
	defer b.wipe()
	stopped := func() bool {
		select {
		case <-s.done:
			return true
		default:
			return false
		}
	}
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		// An error (rand failing) ends this round; the next pop wakes us
		// again, and meanwhile inline signing reports the error to callers.
		_ = s.fillFrom(b, stopped)
	}
}

// fillFrom adds batches until the pool is full, stop reports true or the pool
// is closed, yielding between batches so requests are never starved.
func (s *Signer) fillFrom(b *batch, stop func() bool) error {
	for !stop() {
		need := s.size - s.pool.level()
		if need <= 0 {
			return nil
		}
		n := min(need, s.batchSize)
		if err := b.generate(s.rand, n); err != nil {
			b.wipe()
			return err
		}
		added := s.pool.push(b.pairs[:n])
		b.wipe() // pairs that did not fit are destroyed, never kept
		s.refilled.Add(uint64(added))
		if added == 0 {
			return nil // full (another filler won the race) or closed
		}
		runtime.Gosched()
	}
	return nil
}

// missBatch is how many pairs a signature that finds the pool dry computes itself (at most the
// batch size): it keeps one and puts the others in the pool. One pair alone pays a whole k
// inversion; sixteen share it, as the refiller's batches do, so under sustained load, when the
// requests outrun the refiller, a signature costs nearly the refiller's price per pair instead
// of half as much again. The signature that misses waits for sixteen point multiplications
// (~0.2 ms), far below a hardware key's own time per request.
const missBatch = 16

// missBatches holds the scratch of inline batches, always wiped before it is put back.
var missBatches = sync.Pool{New: func() any { return newBatch(missBatch) }}

// nextPair takes a pooled pair or, when none is ready, computes pairs inline.
func (s *Signer) nextPair(p *pair) error {
	if ok, left := s.pool.pop(p); ok {
		s.hits.Add(1)
		if left <= s.lowWater {
			s.kick()
		}
		return nil
	}
	s.misses.Add(1)
	if s.size == 0 { // no pool: exactly one pair, nowhere to keep more
		var (
			pairs         [1]pair
			k, prefix     [1]ordElement
			px, pz, pprev [1]fieldElement
			x             [1][32]byte
		)
		one := batch{pairs: pairs[:], k: k[:], prefix: prefix[:], px: px[:], pz: pz[:], pprefix: pprev[:], x: x[:]}
		defer one.wipe()
		if err := one.generate(s.rand, 1); err != nil {
			return err
		}
		*p = pairs[0]
		return nil
	}
	s.kick()
	n := min(missBatch, s.batchSize)
	b := missBatches.Get().(*batch)
	defer func() {
		b.wipe()
		missBatches.Put(b)
	}()
	if err := b.generate(s.rand, n); err != nil {
		return err
	}
	*p = b.pairs[0]
	if n > 1 {
		s.refilled.Add(uint64(s.pool.push(b.pairs[1:n]))) // what does not fit is wiped, never kept
	}
	return nil
}

// Sign signs digest (normally a SHA-256 hash) with key and returns the ASN.1
// DER signature that WebAuthn and U2F carry. Digests of any length are
// accepted and truncated per FIPS 186-4.
func (s *Signer) Sign(key *PrivateKey, digest []byte) ([]byte, error) {
	r, sig, err := s.SignRaw(key, digest)
	if err != nil {
		return nil, err
	}
	return encodeDER(&r, &sig), nil
}

// SignScalar signs digest with the private scalar given as 32 big-endian bytes, as Sign does
// with NewPrivateKey(scalar), for a key used once: a credential unwrapped for one request. It
// checks the scalar the same way (ErrInvalidKey unless 0 < d < n) but keeps it on the stack in
// the fixed-limb form the signature needs, so it costs neither the bigmod parse nor the heap
// copies a PrivateKey holds (about 0.5 µs and three allocations of a getAssertion), and leaves
// nothing of the scalar behind. The caller keeps ownership of scalar and wipes it.
func (s *Signer) SignScalar(scalar, digest []byte) ([]byte, error) {
	if len(scalar) != 32 {
		return nil, ErrInvalidKey
	}
	var b [32]byte
	var x, dm ordElement
	defer func() {
		clear(b[:])
		clear(x[:])
		clear(dm[:])
	}()
	copy(b[:], scalar)
	if ordFromBytes(&x, &b) == 0 {
		return nil, ErrInvalidKey
	}
	ordMul(&dm, &x, &ordRR)
	r, sig, err := s.signDM(&dm, digest)
	if err != nil {
		return nil, err
	}
	return encodeDER(&r, &sig), nil
}

// SignRaw is Sign returning r and s as fixed 32-byte big-endian values.
func (s *Signer) SignRaw(key *PrivateKey, digest []byte) (r, sig [32]byte, err error) {
	if key == nil {
		return r, sig, ErrNoKey
	}
	key.mu.RLock()
	defer key.mu.RUnlock()
	if key.d == nil {
		return r, sig, ErrKeyDestroyed
	}
	return s.signDM(&key.dm, digest)
}

// signDM signs digest with the scalar d given as dm = d·R mod n.
func (s *Signer) signDM(dm *ordElement, digest []byte) (r, sig [32]byte, err error) {
	var e ordElement
	digestToOrd(&e, digest)
	defer clear(e[:])
	var p pair
	defer p.wipe()
	for {
		if err := s.nextPair(&p); err != nil {
			return r, sig, err
		}
		ok, err := signWithPair(&sig, dm, &e, &p)
		if err != nil {
			return r, sig, err
		}
		if ok {
			r = p.r
			return r, sig, nil
		}
		p.wipe() // s = 0: discard this nonce and take another (FIPS 186-4)
	}
}

// digestToOrd derives e from a digest per FIPS 186-4 section 6.4: the leftmost min(256, 8·len)
// bits as an integer (n is exactly 256 bits, so a byte truncation, no shift), reduced mod n.
// The digest is public, so the one reduction may branch.
func digestToOrd(e *ordElement, digest []byte) {
	var b [32]byte
	if len(digest) > 32 {
		digest = digest[:32]
	}
	copy(b[32-len(digest):], digest)
	if ordFromBytes(e, &b) == 0 && !isZero(&b) {
		subN(e) // n ≤ e < 2²⁵⁶ < 2n
	}
}

// signWithPair computes s = k⁻¹(e + r·d) mod n into out, with d in Montgomery form (dm) and e
// reduced: three fixed-limb Montgomery multiplications, constant time, no allocation (bigmod's
// generic ones took ~0.6 µs and three allocations per signature). It reports false when s = 0,
// which FIPS 186-4 requires to be retried with a new nonce.
func signWithPair(out *[32]byte, dm, e *ordElement, p *pair) (bool, error) {
	var r, kinv, t ordElement
	defer func() {
		clear(kinv[:])
		clear(t[:])
	}()
	if ordFromBytes(&r, &p.r) == 0 || ordFromBytes(&kinv, &p.kinv) == 0 {
		return false, errors.New("signer: corrupt nonce pair")
	}
	ordMul(&t, &r, dm)           // r·dR·R⁻¹ = r·d
	ordAdd(&t, &t, e)            // e + r·d
	ordMul(&kinv, &kinv, &ordRR) // k⁻¹R
	ordMul(&t, &t, &kinv)        // (e + r·d)·k⁻¹R·R⁻¹ = s
	ordToBytes(out, &t)
	return !isZero(out), nil
}
