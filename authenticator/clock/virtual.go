package clock

import (
	"context"
	"sync"
	"time"
)

// Virtual is a clock that moves only when Advance or Sleep moves it. Timers fire in deadline
// order (in the order they were set for equal deadlines), each in the goroutine that moves the
// clock, with Now equal to its deadline; so a key on a Virtual clock behaves the same on every
// run, whatever the machine's load. A Sleep moves the clock itself: a simulated wait costs no
// wall time. Waits that depend on something other than time (a touch, a CANCEL) still wait.
//
// Virtual is safe for concurrent use. One goroutine moves the clock at a time: goroutines that
// Sleep at once each move it to their own deadline, and one whose deadline another has already
// passed returns at once.
type Virtual struct {
	moving sync.Mutex // held while the clock is being moved; never while mu is held

	mu     sync.Mutex
	now    time.Time
	timers []*virtualTimer // pending timers, unordered: a key has at most a few
	seq    uint64
}

// NewVirtual returns a Virtual clock that reads start until it is moved.
func NewVirtual(start time.Time) *Virtual { return &Virtual{now: start} }

// Now returns the clock's time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

// AfterFunc calls f when the clock has moved d forward. A timer due now (d ≤ 0) fires at the next
// Advance or Sleep, even Advance(0).
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	t := &virtualTimer{v: v, f: f}
	v.mu.Lock()
	v.arm(t, d)
	v.mu.Unlock()
	return t
}

// Advance moves the clock forward by d, firing every timer that falls due on the way.
func (v *Virtual) Advance(d time.Duration) {
	v.moving.Lock()
	defer v.moving.Unlock()
	_ = v.moveTo(context.Background(), v.Now().Add(d))
}

// Sleep moves the clock to d after the time Sleep was called, firing the timers that fall due on
// the way. It stops early, at the deadline of the timer that ended ctx, when a timer's function
// ends ctx (clock.WithTimeout), and returns ctx.Err() then or when ctx ended before.
func (v *Virtual) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	until := v.Now().Add(d)
	v.moving.Lock()
	defer v.moving.Unlock()
	return v.moveTo(ctx, until)
}

// Pending reports how many timers are waiting to fire.
func (v *Virtual) Pending() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.timers)
}

// moveTo fires the timers due by until, one at a time and in order, then sets the clock to until
// unless ctx ended on the way. The caller holds v.moving.
func (v *Virtual) moveTo(ctx context.Context, until time.Time) error {
	for {
		v.mu.Lock()
		next := -1
		for i, t := range v.timers {
			if t.when.After(until) {
				continue
			}
			if next < 0 || t.when.Before(v.timers[next].when) ||
				(t.when.Equal(v.timers[next].when) && t.seq < v.timers[next].seq) {
				next = i
			}
		}
		if next < 0 {
			if v.now.Before(until) {
				v.now = until
			}
			v.mu.Unlock()
			return ctx.Err()
		}
		t := v.timers[next]
		v.remove(next)
		if t.when.After(v.now) {
			v.now = t.when
		}
		v.mu.Unlock()
		t.f() // without the lock: f may read the clock or set timers
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// arm (re)schedules t d from now. The caller holds v.mu.
func (v *Virtual) arm(t *virtualTimer, d time.Duration) {
	v.seq++
	t.when, t.seq = v.now.Add(d), v.seq
	if !t.pending {
		t.pending = true
		v.timers = append(v.timers, t)
	}
}

// disarm takes t off the pending list and reports whether it was on it. The caller holds v.mu.
func (v *Virtual) disarm(t *virtualTimer) bool {
	if !t.pending {
		return false
	}
	for i, x := range v.timers {
		if x == t {
			v.remove(i)
			break
		}
	}
	return true
}

// remove drops the i-th pending timer. The caller holds v.mu.
func (v *Virtual) remove(i int) {
	v.timers[i].pending = false
	last := len(v.timers) - 1
	v.timers[i] = v.timers[last]
	v.timers[last] = nil
	v.timers = v.timers[:last]
}

type virtualTimer struct {
	v       *Virtual
	f       func()
	when    time.Time
	seq     uint64
	pending bool // guarded by v.mu
}

func (t *virtualTimer) Stop() bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	return t.v.disarm(t)
}

func (t *virtualTimer) Reset(d time.Duration) bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	was := t.pending
	t.v.arm(t, d)
	return was
}
