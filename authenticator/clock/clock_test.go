package clock_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/stretchr/testify/require"
)

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// ms is a duration in milliseconds, for readable expectations.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// recorder notes, for each call, the label and the clock's time at the call.
type recorder struct {
	mu    sync.Mutex
	c     clock.Clock
	calls []string
	at    []time.Duration
}

func (r *recorder) fn(label string) func() {
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls = append(r.calls, label)
		r.at = append(r.at, r.c.Now().Sub(epoch))
	}
}

func TestVirtualFiresInDeadlineOrderAtTheirDeadlines(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(epoch)
	r := &recorder{c: v}
	v.AfterFunc(ms(300), r.fn("c"))
	v.AfterFunc(ms(100), r.fn("a"))
	v.AfterFunc(ms(200), r.fn("b1"))
	v.AfterFunc(ms(200), r.fn("b2")) // same deadline: in the order they were set
	late := v.AfterFunc(ms(900), r.fn("never"))
	require.Equal(t, 5, v.Pending())

	v.Advance(ms(250))
	require.Equal(t, []string{"a", "b1", "b2"}, r.calls)
	require.Equal(t, []time.Duration{ms(100), ms(200), ms(200)}, r.at)
	require.Equal(t, epoch.Add(ms(250)), v.Now(), "the clock ends where it was moved to")

	require.True(t, late.Stop())
	require.False(t, late.Stop(), "a stopped timer is no longer pending")
	v.Advance(time.Second)
	require.Equal(t, []string{"a", "b1", "b2", "c"}, r.calls)
	require.Equal(t, ms(300), r.at[3])
	require.Zero(t, v.Pending())
}

func TestVirtualPeriodicTimer(t *testing.T) {
	t.Parallel()
	// A keepalive: the function re-arms its own timer. Every firing is exactly one period after
	// the previous one, however far the clock is moved at once.
	v := clock.NewVirtual(epoch)
	var (
		at []time.Duration
		tm clock.Timer
		mu sync.Mutex
	)
	mu.Lock()
	tm = v.AfterFunc(ms(100), func() {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, v.Now().Sub(epoch))
		tm.Reset(ms(100))
	})
	mu.Unlock()
	v.Advance(ms(1500))
	require.Len(t, at, 15)
	for i, d := range at {
		require.Equal(t, ms(100*(i+1)), d)
	}
	require.True(t, tm.Stop())
}

func TestVirtualSleepMovesTheClock(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(epoch)
	r := &recorder{c: v}
	v.AfterFunc(ms(500), r.fn("half"))
	start := clock.Real{}.Now()
	require.NoError(t, v.Sleep(context.Background(), time.Hour))
	require.Less(t, clock.Real{}.Now().Sub(start), time.Second, "a virtual hour costs no wall time")
	require.Equal(t, epoch.Add(time.Hour), v.Now())
	require.Equal(t, []time.Duration{ms(500)}, r.at)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, v.Sleep(ctx, time.Second), context.Canceled)
	require.Equal(t, epoch.Add(time.Hour), v.Now(), "a cancelled sleep does not move the clock")
}

func TestVirtualSleepStopsAtTimeout(t *testing.T) {
	t.Parallel()
	// A user who would answer after 10 s, asked with a 1.5 s timeout: the sleep ends when the
	// timeout fires, at 1.5 s, not at 10 s.
	v := clock.NewVirtual(epoch)
	ctx, cancel := clock.WithTimeout(context.Background(), v, ms(1500))
	defer cancel()
	err := v.Sleep(ctx, 10*time.Second)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, context.Cause(ctx), context.DeadlineExceeded)
	require.Equal(t, epoch.Add(ms(1500)), v.Now())

	// Cancelled before the time runs out: the cause says so and the timer is gone.
	ctx, cancel = clock.WithTimeout(context.Background(), v, time.Minute)
	cancel()
	require.ErrorIs(t, context.Cause(ctx), context.Canceled)
	require.Zero(t, v.Pending())
}

func TestVirtualResetAndStop(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(epoch)
	r := &recorder{c: v}
	tm := v.AfterFunc(ms(100), r.fn("x"))
	v.Advance(ms(60))
	require.True(t, tm.Reset(ms(100)), "pending when reset")
	v.Advance(ms(60))
	require.Empty(t, r.calls, "reset moved the deadline to 160 ms")
	v.Advance(ms(40))
	require.Equal(t, []time.Duration{ms(160)}, r.at)
	require.False(t, tm.Reset(ms(10)), "fired: no longer pending")
	v.Advance(ms(10))
	require.Equal(t, []time.Duration{ms(160), ms(170)}, r.at)

	due := v.AfterFunc(0, r.fn("now"))
	v.Advance(0)
	require.Equal(t, "now", r.calls[2], "a timer due now fires on the next move")
	require.False(t, due.Stop())
}

func TestVirtualConcurrentUse(t *testing.T) {
	t.Parallel()
	// Under the race detector: timers set, reset and stopped while two goroutines move the clock.
	v := clock.NewVirtual(epoch)
	var fired sync.WaitGroup
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				switch (g + i) % 3 {
				case 0:
					fired.Add(1)
					v.AfterFunc(ms(i%7), fired.Done)
				case 1:
					v.AfterFunc(ms(i), func() {}).Stop()
				default:
					_ = v.Sleep(context.Background(), ms(i%5))
				}
			}
		}()
	}
	wg.Wait()
	v.Advance(time.Second)
	fired.Wait()
	require.Zero(t, v.Pending())
}

func TestRealClock(t *testing.T) {
	t.Parallel()
	c := clock.Or(nil)
	require.IsType(t, clock.Real{}, c)
	start := c.Now()
	require.NoError(t, c.Sleep(context.Background(), ms(20)))
	require.GreaterOrEqual(t, c.Now().Sub(start), ms(20), "a real sleep takes wall time")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.AfterFunc(ms(5), func() { cancel(); close(done) })
	require.ErrorIs(t, c.Sleep(ctx, time.Hour), context.Canceled)
	<-done

	tctx, stop := clock.WithTimeout(context.Background(), c, ms(10))
	defer stop()
	<-tctx.Done()
	require.ErrorIs(t, context.Cause(tctx), context.DeadlineExceeded)
}
