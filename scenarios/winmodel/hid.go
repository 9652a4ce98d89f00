package winmodel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/scenarios/host"
)

// SilenceLimit is how long Windows waits for the next report from a key once it sent a request:
// a key that sends nothing — no answer, no CTAPHID_KEEPALIVE — for longer is given up on. About
// half a second (reference windows-host.md § Timing); the exact value is inferred.
const SilenceLimit = 500 * time.Millisecond

// SilenceError is a request Windows gave up on: the key stayed silent for Silent, longer than
// Limit, after the request or after its last report.
type SilenceError struct {
	Silent, Limit time.Duration
	// Keepalives counts the KEEPALIVE reports the key sent for the request before it fell silent.
	Keepalives int
	// Wall is true when the silence was measured on the wall clock (a key outside the process),
	// false when on the key's own clock from the times its reports were produced.
	Wall bool
}

func (e *SilenceError) Error() string {
	after := "the request (no CTAPHID_KEEPALIVE in time)"
	if e.Keepalives > 0 {
		after = fmt.Sprintf("its keepalive number %d", e.Keepalives)
	}
	silent := e.Silent
	if e.Wall {
		silent = silent.Round(time.Millisecond)
	}
	return fmt.Sprintf("the key sent nothing for %v after %s; Windows gives up after %v", silent, after, e.Limit)
}

// windowsHID reads a key as Windows' HID stack does: a report must follow the request, and each
// report the one before, within SilenceLimit. On a connection that stamps reports with the key's
// clock (an in-process key, ctaphid.TimedReportConn) the gaps are measured between those stamps,
// so a virtual-clock key that stays silent 1.5 s fails at once and deterministically, in no wall
// time; on any other connection (a served or real key) the limit is a wall-clock deadline. Once it
// gives up, the connection is closed, which cancels the key's request.
type windowsHID struct {
	ctaphid.ReportConn
	timed ctaphid.TimedReportConn // nil: read against the wall clock
	wall  clock.Clock             // the wall clock (a virtual one in tests)
	now   func() time.Time        // the key's clock for timed connections, the wall clock otherwise
	limit time.Duration

	mu         sync.Mutex
	last       time.Time // the request's write or the last report
	keepalives int       // since the last write
}

// hidFor returns the wrapper Windows' HID stack puts around a connection to key; a connection
// read in wall time gets slack beyond the limit (WithWallSlack); wall is the wall clock
// (clock.Real but in tests).
func hidFor(key host.Key, limit, slack time.Duration, wall clock.Clock) func(ctaphid.ReportConn) ctaphid.ReportConn {
	return func(conn ctaphid.ReportConn) ctaphid.ReportConn {
		w := &windowsHID{ReportConn: conn, wall: wall, now: wall.Now, limit: limit + slack}
		if t, ok := conn.(ctaphid.TimedReportConn); ok {
			w.timed, w.limit = t, limit
			if c, ok := key.(host.Clock); ok {
				w.now = c.Now
			}
		}
		return w
	}
}

func (w *windowsHID) WriteReport(ctx context.Context, r []byte) error {
	w.mu.Lock()
	w.last, w.keepalives = w.now(), 0
	w.mu.Unlock()
	return w.ReportConn.WriteReport(ctx, r)
}

func (w *windowsHID) ReadReport(ctx context.Context) ([]byte, error) {
	w.mu.Lock()
	last := w.last
	w.mu.Unlock()
	var (
		r   []byte
		at  time.Time
		err error
	)
	if w.timed != nil {
		if r, at, err = w.timed.ReadReportAt(ctx); err != nil {
			return nil, err
		}
	} else {
		rctx, cancel := clock.WithTimeout(ctx, w.wall, last.Add(w.limit).Sub(w.now()))
		r, err = w.ReportConn.ReadReport(rctx)
		cause := context.Cause(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(cause, context.DeadlineExceeded) {
				return nil, w.giveUp(w.now().Sub(last), true)
			}
			return nil, err
		}
		at = w.now()
	}
	if gap := at.Sub(last); gap > w.limit {
		return nil, w.giveUp(gap, w.timed == nil)
	}
	w.mu.Lock()
	w.last = at
	if len(r) > 4 && r[4] == ctaphid.CmdKeepalive {
		w.keepalives++
	}
	w.mu.Unlock()
	return r, nil
}

// giveUp closes the connection (the key's request is cancelled) and says why.
func (w *windowsHID) giveUp(silent time.Duration, wall bool) error {
	w.mu.Lock()
	n := w.keepalives
	w.mu.Unlock()
	_ = w.ReportConn.Close()
	return &SilenceError{Silent: silent, Limit: w.limit, Keepalives: n, Wall: wall}
}
