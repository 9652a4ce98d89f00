package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt maps the state file into memory and trusts what it finds there: a page number past the end
// of a truncated file faults with SIGBUS, a flipped bit in a page's element table sends it reading
// outside the mapping (SIGSEGV) or round a cycle of pages forever, and neither can be recovered.
// checkFile therefore reads the file with ordinary reads before bbolt ever maps it and checks every
// structure bbolt will follow: both header (meta) pages, the size they promise, the freelist, and
// every page reachable from the root, with each element's key and value inside its page, keys in
// order, no page reached twice, and none both in use and free. This is what bbolt's own tx.Check
// verifies, done without the mapping (tx.Check itself would fault or loop on the same damage).
//
// The on-disk facts used (bbolt format version 2): a page starts with a 16-byte header {id u64,
// flags u16, count u16, overflow u32}; flags 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist.
// Pages 0 and 1 are meta pages: after the header {magic u32 = 0xED0CDAED, version u32 = 2,
// pageSize u32, flags u32, root bucket {root page u64, sequence u64}, freelist page u64 (all ones:
// none), high-water page u64, txid u64, checksum u64 = FNV-1a 64 of the 56 bytes before it}; the
// valid one with the higher txid is current. Branch elements are {pos u32, ksize u32, page u64},
// leaf elements {flags u32, pos u32, ksize u32, vsize u32}, 16 bytes each right after the header,
// with pos counted from the element itself. A leaf element with flag 0x01 is a bucket whose value
// starts with {root page u64, sequence u64}; root 0 means the bucket's page follows inline in the
// value. A freelist page lists page ids (u64) after the header; a count of 0xFFFF means the first
// u64 holds the real count.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elementSize      = 16
	metaSize         = 64 // through the checksum
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	leafBucketFlag   = 0x01
	noFreelist       = ^uint64(0)
	bucketHeaderSize = 16
	maxTreeDepth     = 64
	minPageSize      = 512
	maxPageSize      = 1 << 16
)

var le = binary.NativeEndian // bbolt writes the machine's own byte order

type boltMeta struct {
	magic, version, pageSize  uint32
	root, freelist, hwm, txid uint64
	sumOK                     bool
}

func parseMeta(b []byte) boltMeta {
	m := b[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(m[:metaSize-8])
	return boltMeta{
		magic: le.Uint32(m[0:]), version: le.Uint32(m[4:]), pageSize: le.Uint32(m[8:]),
		root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:]),
		sumOK: le.Uint64(m[56:]) == h.Sum64(),
	}
}

func (m boltMeta) valid() bool { return m.magic == boltMagic && m.version == boltVersion && m.sumOK }

// checkFile reports ErrNotState for a file that is not a bbolt database at all (empty, or no
// header), ErrDamaged for one whose structure is broken, and nil when bbolt can safely map it.
func checkFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return fmt.Errorf("%w: the file is empty (0 bytes)", ErrNotState)
	}
	head := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(head, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %d bytes is too short for a state file", ErrNotState, size)
		}
		return err
	}
	m0 := parseMeta(head)
	pageSize := int64(m0.pageSize)
	if !m0.valid() || !goodPageSize(pageSize) {
		// The first header is unusable; find the second where each possible page size puts it.
		pageSize = 0
		for ps := int64(minPageSize); ps <= maxPageSize; ps *= 2 {
			if _, err := f.ReadAt(head, ps); err == nil {
				if m := parseMeta(head); m.valid() && int64(m.pageSize) == ps {
					pageSize = ps
					break
				}
			}
		}
		if pageSize == 0 {
			if m0.magic != boltMagic {
				return fmt.Errorf("%w: no bbolt header (it begins % x)", ErrNotState, head[pageHeaderSize:pageHeaderSize+8])
			}
			return fmt.Errorf("%w: both header pages are damaged", ErrDamaged)
		}
	}
	if size < 2*pageSize {
		return fmt.Errorf("%w: truncated to %d bytes, shorter than its two header pages", ErrDamaged, size)
	}
	if _, err := f.ReadAt(head, pageSize); err != nil {
		return err
	}
	meta, ok := current(m0, parseMeta(head), pageSize)
	if !ok {
		return fmt.Errorf("%w: both header pages are damaged", ErrDamaged)
	}
	if meta.hwm < 3 || meta.hwm > uint64(size/pageSize) {
		if meta.hwm > uint64(size/pageSize) && meta.hwm < 1<<40 {
			return fmt.Errorf("%w: truncated to %d bytes; its header says the data needs %d", ErrDamaged, size, meta.hwm*uint64(pageSize))
		}
		return fmt.Errorf("%w: header names %d pages for a %d-byte file", ErrDamaged, meta.hwm, size)
	}
	c := &checker{f: f, pageSize: pageSize, hwm: meta.hwm, used: make([]byte, meta.hwm)}
	c.used[0], c.used[1] = 1, 1
	if err := c.freelist(meta.freelist); err != nil {
		return err
	}
	if err := c.tree(meta.root, nil, nil, 0); err != nil {
		return err
	}
	return nil
}

func goodPageSize(ps int64) bool { return ps >= minPageSize && ps <= maxPageSize && ps&(ps-1) == 0 }

// current picks the header bbolt will use: the valid one with the higher txid.
func current(m0, m1 boltMeta, pageSize int64) (boltMeta, bool) {
	ok0 := m0.valid() && int64(m0.pageSize) == pageSize
	ok1 := m1.valid() && int64(m1.pageSize) == pageSize
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		return m1, true
	case ok0:
		return m0, true
	}
	return boltMeta{}, false
}

type checker struct {
	f        *os.File
	pageSize int64
	hwm      uint64
	used     []byte // per page: 0 unseen, 1 in use (meta, tree), 2 free, 3 freelist page
}

func damaged(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, a...))
}

// page reads page id with its overflow pages and claims them all as kind.
func (c *checker) page(id uint64, kind byte) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, damaged("page %d is outside the file's %d pages", id, c.hwm)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := c.f.ReadAt(hdr, int64(id)*c.pageSize); err != nil {
		return nil, damaged("page %d: %v", id, err)
	}
	if got := le.Uint64(hdr); got != id {
		return nil, damaged("page %d calls itself page %d", id, got)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if overflow >= c.hwm-id {
		return nil, damaged("page %d runs %d pages past the end of the data", id, overflow)
	}
	for p := id; p <= id+overflow; p++ {
		if c.used[p] != 0 {
			return nil, damaged("page %d is used twice", p)
		}
		c.used[p] = kind
	}
	buf := make([]byte, int64(overflow+1)*c.pageSize)
	if _, err := c.f.ReadAt(buf, int64(id)*c.pageSize); err != nil {
		return nil, damaged("page %d: %v", id, err)
	}
	return buf, nil
}

func (c *checker) freelist(id uint64) error {
	if id == noFreelist {
		return nil // bbolt rebuilds the list from the tree, which is checked below
	}
	buf, err := c.page(id, 3)
	if err != nil {
		return err
	}
	if flags := le.Uint16(buf[8:]); flags != flagFreelist {
		return damaged("freelist page %d has type %#x", id, flags)
	}
	start, n := uint64(pageHeaderSize), uint64(le.Uint16(buf[10:]))
	if n == 0xFFFF {
		n = le.Uint64(buf[pageHeaderSize:])
		start += 8
	}
	if n > (uint64(len(buf))-start)/8 {
		return damaged("freelist page %d lists %d pages, more than it holds", id, n)
	}
	var prev uint64
	for i := range n {
		p := le.Uint64(buf[start+8*i:])
		if p < 2 || p >= c.hwm || (i > 0 && p <= prev) {
			return damaged("freelist page %d: entry %d (page %d) out of order or range", id, i, p)
		}
		if c.used[p] != 0 {
			return damaged("page %d is both free and in use", p)
		}
		c.used[p] = 2
		prev = p
	}
	return nil
}

// tree checks the bucket page at id and everything under it; keys must lie in [lo, hi).
func (c *checker) tree(id uint64, lo, hi []byte, depth int) error {
	if depth > maxTreeDepth {
		return damaged("page %d: the tree is deeper than %d levels", id, maxTreeDepth)
	}
	buf, err := c.page(id, 1)
	if err != nil {
		return err
	}
	return c.node(buf, id, lo, hi, depth)
}

// node checks one branch or leaf page (buf is the whole page, or an inline bucket's page).
func (c *checker) node(buf []byte, id uint64, lo, hi []byte, depth int) error {
	flags, count := le.Uint16(buf[8:]), int(le.Uint16(buf[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return damaged("page %d has type %#x where a branch or leaf belongs", id, flags)
	}
	if pageHeaderSize+count*elementSize > len(buf) {
		return damaged("page %d: %d elements do not fit", id, count)
	}
	if flags == flagBranch && count == 0 {
		return damaged("branch page %d is empty", id)
	}
	keys := make([][]byte, count)
	children := make([]uint64, count)
	for i := range count {
		e := pageHeaderSize + i*elementSize
		var pos, ksize, vsize uint64
		if flags == flagBranch {
			pos, ksize, children[i] = uint64(le.Uint32(buf[e:])), uint64(le.Uint32(buf[e+4:])), le.Uint64(buf[e+8:])
		} else {
			pos, ksize, vsize = uint64(le.Uint32(buf[e+4:])), uint64(le.Uint32(buf[e+8:])), uint64(le.Uint32(buf[e+12:]))
		}
		start := uint64(e) + pos
		if start+ksize+vsize > uint64(len(buf)) {
			return damaged("page %d: element %d points outside the page", id, i)
		}
		k := buf[start : start+ksize]
		if (i > 0 && bytes.Compare(keys[i-1], k) >= 0) || (lo != nil && bytes.Compare(k, lo) < 0) || (hi != nil && bytes.Compare(k, hi) >= 0) {
			return damaged("page %d: key %d is out of order", id, i)
		}
		keys[i] = k
		if flags == flagLeaf {
			ef := le.Uint32(buf[e:])
			if ef&^leafBucketFlag != 0 {
				return damaged("page %d: element %d has flags %#x", id, i, ef)
			}
			if ef&leafBucketFlag != 0 {
				if err := c.bucket(buf[start+ksize:start+ksize+vsize], id, i, depth); err != nil {
					return err
				}
			}
		}
	}
	if flags == flagBranch {
		for i, child := range children {
			var next []byte
			if i+1 < count {
				next = keys[i+1]
			} else {
				next = hi
			}
			if err := c.tree(child, keys[i], next, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// bucket checks a nested bucket stored as leaf value v of page id.
func (c *checker) bucket(v []byte, id uint64, i, depth int) error {
	if len(v) < bucketHeaderSize {
		return damaged("page %d: bucket %d has a %d-byte header", id, i, len(v))
	}
	root := le.Uint64(v)
	if root != 0 {
		return c.tree(root, nil, nil, depth+1)
	}
	inline := v[bucketHeaderSize:]
	if len(inline) < pageHeaderSize {
		return damaged("page %d: inline bucket %d is %d bytes", id, i, len(inline))
	}
	if depth+1 > maxTreeDepth {
		return damaged("page %d: buckets nest deeper than %d levels", id, maxTreeDepth)
	}
	if le.Uint16(inline[8:]) != flagLeaf {
		return damaged("page %d: inline bucket %d is not a leaf", id, i)
	}
	return c.node(inline, id, nil, nil, depth+1)
}
