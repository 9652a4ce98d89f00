package listener

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"
)

// Bounds of the accept backoff, the same as net/http's.
const (
	MinBackoff = 5 * time.Millisecond
	MaxBackoff = time.Second
)

// Temporary reports whether an accept error can heal by itself: a resource limit (EMFILE, ENFILE,
// ENOBUFS, ENOMEM), a connection that was aborted before it was accepted, or a net.Error that says
// it is temporary. A closed listener is not.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// Backoff paces the retries of an accept that failed temporarily: MinBackoff, doubling, capped at
// MaxBackoff; Reset after a successful accept. The zero value is ready to use.
type Backoff struct {
	delay time.Duration
	// After is the clock; nil means time.After. Tests pass their own to step it.
	After func(time.Duration) <-chan time.Time
}

// Wait sleeps for the next delay and returns it; ok is false when ctx ended first.
func (b *Backoff) Wait(ctx context.Context) (d time.Duration, ok bool) {
	if b.delay == 0 {
		b.delay = MinBackoff
	} else {
		b.delay = min(2*b.delay, MaxBackoff)
	}
	after := b.After
	if after == nil {
		after = time.After
	}
	select {
	case <-after(b.delay):
		return b.delay, true
	case <-ctx.Done():
		return b.delay, false
	}
}

// Reset starts the next failure streak at MinBackoff again.
func (b *Backoff) Reset() { b.delay = 0 }
