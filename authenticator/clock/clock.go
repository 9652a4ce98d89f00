// Package clock is the one source of time for the key and the lab: CTAPHID timeouts and
// keepalives, the PIN token and reset windows, the getNextAssertion timer, simulated delays (a slow
// secure element, a user reaching for the key, injected faults) and the scenario runner's waits.
//
// Real is the wall clock; it is the only place in ctap/, authenticator/ and scenarios/ that reads
// time.Now. Virtual is a clock that moves only when told to, for tests and in-process runs: a
// simulated wait costs no wall time and every timer fires at its exact deadline, so timing
// behaviour is deterministic.
package clock

import (
	"context"
	"time"
)

// Clock tells the time, runs functions later and waits.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or in the goroutine advancing the clock
	// (Virtual) once d has passed. f must not advance or sleep on the same clock.
	AfterFunc(d time.Duration, f func()) Timer
	// Sleep waits for d to pass or ctx to end, whichever is first, and returns ctx.Err() in the
	// second case.
	Sleep(ctx context.Context, d time.Duration) error
}

// Timer is a pending AfterFunc call. Its methods behave as time.Timer's.
type Timer interface {
	// Stop prevents the call if it has not happened yet, and reports whether it prevented it.
	Stop() bool
	// Reset makes the call happen d from now (again, if it already happened), and reports
	// whether it was still pending.
	Reset(d time.Duration) bool
}

// Real is the wall clock.
type Real struct{}

// Now returns the wall-clock time.
func (Real) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Sleep waits for d of wall time or for ctx to end.
func (Real) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Or returns c, or Real when c is nil: the default of every Clock option.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

// WithTimeout returns a copy of ctx that ends when d has passed on c. Its Err is
// context.Canceled whether the time ran out or cancel was called; context.Cause tells them apart
// (context.DeadlineExceeded for the timeout). Call cancel when done, as with context.WithTimeout.
func WithTimeout(ctx context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := Or(c).AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}
