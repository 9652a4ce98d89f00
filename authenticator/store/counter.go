package store

import (
	"fmt"
	"math"
)

// NextSignCount hands out counter values from memory and writes only when a reserved range is
// used up: it persists a new mark (cur + reserve) before handing out anything above the old
// one. A crash therefore loses at most the unused rest of a range, never a value already
// returned, and the next open continues above the mark. One fsync per reserve values keeps an
// assertion from paying for a disk flush.
func (s *db) NextSignCount() (uint32, error) {
	s.counter.Lock()
	defer s.counter.Unlock()
	if s.closed { // written under the counter lock too, so this read is ordered
		return 0, ErrClosed
	}
	if s.cur >= math.MaxUint32 {
		return 0, ErrCounterExhausted
	}
	if s.cur >= s.limit {
		mark := min(s.cur+uint64(s.o.counterReserve), math.MaxUint32)
		err := s.update(func(t txn) error { return t.put(bucketMeta, keyCountMark, encodeUint(mark)) })
		if err != nil {
			return 0, fmt.Errorf("store: reserve signature counter range: %w", err)
		}
		s.limit = mark
	}
	s.cur++
	return uint32(s.cur), nil
}

// Close lowers the persisted counter mark to the last value handed out, so a clean restart
// continues without a gap, and then releases the backend.
func (s *db) Close() error {
	// Lock order is counter, then life, the same as NextSignCount → update.
	s.counter.Lock()
	defer s.counter.Unlock()
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	var err error
	if s.cur < s.limit {
		err = s.b.update(func(t txn) error { return t.put(bucketMeta, keyCountMark, encodeUint(s.cur)) })
		if err == nil {
			s.limit = s.cur
		}
	}
	if cerr := s.b.close(); err == nil {
		err = cerr
	}
	return err
}
