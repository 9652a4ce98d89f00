package signer

import (
	"fmt"
	"io"
	"sync"

	"filippo.io/nistec"
)

// pair is one precomputed nonce: k⁻¹ mod n and r = x(k·G) mod n, both
// big-endian. With one signature it reveals the private key, so it is as
// secret as a key: it lives only in process memory, is used once, and is
// wiped by whoever takes it.
type pair struct {
	kinv [32]byte
	r    [32]byte
}

func (p *pair) wipe() {
	clear(p.kinv[:])
	clear(p.r[:])
}

// pool is a fixed ring of pairs. The mutex is held only to move 64 bytes, so
// the request path never waits behind pair generation, which happens outside.
type pool struct {
	mu     sync.Mutex
	slots  []pair
	head   int
	count  int
	closed bool
}

func newPool(size int) *pool {
	return &pool{slots: make([]pair, size)}
}

// pop moves the oldest pair into dst and wipes its slot. It returns false
// when the pool is empty or closed, and the number of pairs left.
func (p *pool) pop(dst *pair) (ok bool, left int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 || p.closed {
		return false, 0
	}
	slot := &p.slots[p.head]
	*dst = *slot
	slot.wipe()
	p.head = (p.head + 1) % len(p.slots)
	p.count--
	return true, p.count
}

// push copies as many pairs from src as fit and reports how many it took.
// The caller still owns (and must wipe) src.
func (p *pool) push(src []pair) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0
	}
	n := 0
	for n < len(src) && p.count < len(p.slots) {
		p.slots[(p.head+p.count)%len(p.slots)] = src[n]
		p.count++
		n++
	}
	return n
}

func (p *pool) level() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// close wipes every stored pair and refuses further pushes and pops.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i := range p.slots {
		p.slots[i].wipe()
	}
	p.count = 0
}

// batch is the working set of one refill batch, allocated once per refiller
// so that steady-state refilling does not allocate per pair.
type batch struct {
	pairs  []pair
	k      []ordElement
	prefix []ordElement
}

func newBatch(n int) *batch {
	return &batch{pairs: make([]pair, n), k: make([]ordElement, n), prefix: make([]ordElement, n)}
}

func (b *batch) wipe() {
	for i := range b.pairs {
		b.pairs[i].wipe()
	}
	clear(b.k)
	clear(b.prefix)
}

// generatePairs fills out with fresh pairs. k and prefix are scratch of the
// same length as out; all three are left holding secrets only in out.
//
// Each k is drawn uniformly from [1, n-1] by rejection sampling 32 bytes of
// rand. The inversions are batched with Montgomery's trick: with prefix
// products P_i = k_0···k_i, one inversion of P_last and 3 multiplications per
// element yield every k_i⁻¹, so a batch of B costs B point multiplications
// plus a single inversion instead of B of them.
func generatePairs(rand io.Reader, out []pair, k, prefix []ordElement) error {
	var (
		buf   [32]byte
		kNorm ordElement
		inv   ordElement
		kInv  ordElement
		one   = ordElement{1}
	)
	defer func() {
		clear(buf[:])
		clear(kNorm[:])
		clear(inv[:])
		clear(kInv[:])
		clear(k)
		clear(prefix)
	}()
	point := nistec.NewP256Point()
	for i := range out {
		for {
			if _, err := io.ReadFull(rand, buf[:]); err != nil {
				return fmt.Errorf("signer: reading nonce randomness: %w", err)
			}
			if ordFromBytes(&kNorm, &buf) == 0 {
				continue // k ≥ n or k = 0: probability about 2⁻³², draw again
			}
			if _, err := point.ScalarBaseMult(buf[:]); err != nil {
				return fmt.Errorf("signer: nonce point: %w", err)
			}
			x, err := point.BytesX()
			if err != nil {
				continue // point at infinity, impossible for 0 < k < n
			}
			// r = x mod n. x < p < 2n, so at most one subtraction; r is public.
			var xr ordElement
			copy(out[i].r[:], x)
			if ordFromBytes(&xr, &out[i].r) == 0 && !isZero(&out[i].r) {
				subN(&xr)
				ordToBytes(&out[i].r, &xr)
			}
			if isZero(&out[i].r) {
				continue // r = 0 cannot sign; FIPS 186-4 says pick a new k
			}
			ordMul(&k[i], &kNorm, &ordRR) // into the Montgomery domain
			break
		}
	}

	prefix[0] = k[0]
	for i := 1; i < len(out); i++ {
		ordMul(&prefix[i], &prefix[i-1], &k[i])
	}
	ordInvMont(&inv, &prefix[len(out)-1]) // inv = (k_0···k_last)⁻¹
	for i := len(out) - 1; i > 0; i-- {
		ordMul(&kInv, &inv, &prefix[i-1]) // k_i⁻¹
		ordMul(&inv, &inv, &k[i])         // (k_0···k_{i-1})⁻¹
		ordMul(&kInv, &kInv, &one)        // leave the Montgomery domain
		ordToBytes(&out[i].kinv, &kInv)
	}
	ordMul(&kInv, &inv, &one)
	ordToBytes(&out[0].kinv, &kInv)
	return nil
}
