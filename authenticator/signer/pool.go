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
	// The nonce points' Jacobian X and Z, prefix products of Z and their affine x, for the
	// batched conversion of field.go.
	px, pz, pprefix []fieldElement
	x               [][32]byte
	// affineX replaces batchAffineX when set: tests use it to reach the r = 0 path.
	affineX func(out [][32]byte, x, z, prefix []fieldElement)
}

func newBatch(n int) *batch {
	return &batch{
		pairs: make([]pair, n), k: make([]ordElement, n), prefix: make([]ordElement, n),
		px: make([]fieldElement, n), pz: make([]fieldElement, n), pprefix: make([]fieldElement, n),
		x: make([][32]byte, n),
	}
}

func (b *batch) wipe() {
	for i := range b.pairs {
		b.pairs[i].wipe()
	}
	clear(b.k)
	clear(b.prefix)
	clear(b.px)
	clear(b.pz)
	clear(b.pprefix)
	clear(b.x)
}

// generate fills b.pairs[:n] with fresh pairs; the rest of b is scratch, left holding secrets
// only in the pairs.
//
// Each k is drawn uniformly from [1, n-1] by rejection sampling 32 bytes of rand. Both
// inversions a pair needs are batched with Montgomery's trick (prefix products, one inversion
// of the last, then a few multiplications per element walking back): k⁻¹ mod n here, and the
// Z⁻² mod p that turns the point k·G into its affine x in field.go's batchAffineX. A batch of
// B then costs B point multiplications plus two inversions instead of 2B of them. Where this
// build cannot read nistec's coordinates (jacobian), each x comes from BytesX as before.
func (b *batch) generate(rand io.Reader, n int) error {
	out, k, prefix := b.pairs[:n], b.k[:n], b.prefix[:n]
	var (
		inv  ordElement
		kInv ordElement
		one  = ordElement{1}
	)
	defer func() {
		clear(inv[:])
		clear(kInv[:])
		clear(k)
		clear(prefix)
		clear(b.px)
		clear(b.pz)
		clear(b.pprefix)
		clear(b.x)
	}()
	point := nistec.NewP256Point()
	for i := range out {
		if err := drawNonce(rand, &k[i], point); err != nil {
			return err
		}
		if jacobianOK {
			x, z := jacobian(point)
			b.px[i], b.pz[i] = *x, *z
			continue
		}
		if err := slowNonce(rand, &out[i], &k[i], point); err != nil {
			return err
		}
	}
	if jacobianOK {
		affine := batchAffineX
		if b.affineX != nil {
			affine = b.affineX
		}
		affine(b.x[:n], b.px[:n], b.pz[:n], b.pprefix[:n])
		for i := range out {
			if setR(&out[i], &b.x[i]) {
				continue
			}
			// r = 0 (or a Z of 0 zeroed the batch): FIPS 186-4 says take another k. point
			// holds the batch's last nonce, not this one: draw afresh before reading it.
			if err := drawNonce(rand, &k[i], point); err != nil {
				return err
			}
			if err := slowNonce(rand, &out[i], &k[i], point); err != nil {
				return err
			}
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

// drawNonce draws k uniformly from [1, n−1], sets point = k·G and stores k in the Montgomery
// domain (for the batched k⁻¹).
func drawNonce(rand io.Reader, k *ordElement, point *nistec.P256Point) error {
	var buf [32]byte
	var kNorm ordElement
	defer func() {
		clear(buf[:])
		clear(kNorm[:])
	}()
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
		ordMul(k, &kNorm, &ordRR) // into the Montgomery domain
		return nil
	}
}

// slowNonce finishes p's r from the point drawNonce just left for k (nistec's BytesX, one
// inversion of its own), drawing a new k while r comes out 0.
func slowNonce(rand io.Reader, p *pair, k *ordElement, point *nistec.P256Point) error {
	for {
		if x, err := point.BytesX(); err == nil && setR(p, (*[32]byte)(x)) {
			return nil
		}
		// The point at infinity (impossible for 0 < k < n) or r = 0: another k.
		if err := drawNonce(rand, k, point); err != nil {
			return err
		}
	}
}

// setR sets p.r = x mod n from a point's affine x and reports whether it is usable (not 0).
// x < p < 2n, so one subtraction at most; r is public.
func setR(p *pair, x *[32]byte) bool {
	var xr ordElement
	p.r = *x
	if ordFromBytes(&xr, &p.r) == 0 && !isZero(&p.r) {
		subN(&xr)
		ordToBytes(&p.r, &xr)
	}
	return !isZero(&p.r)
}
