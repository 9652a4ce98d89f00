package user

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/stretchr/testify/require"
)

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func TestFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var zero Answer
	require.Equal(t, Timeout, zero, "an answer nobody gave is no reaction")
	for name, p := range map[string]Policy{
		"zero Fixed":       Fixed(zero),
		"zero Script":      &Script{},
		"exhausted script": NewScript(nil, Yes),
		"empty Switch":     NewSwitch(nil),
	} {
		var a Answer
		for range 2 {
			var err error
			a, err = p.Ask(ctx, Request{})
			require.NoError(t, err, name)
		}
		require.Equal(t, Timeout, a, name)
	}
	a, err := ParseAnswer("perhaps")
	require.Error(t, err)
	require.Equal(t, Timeout, a)
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	a, err = Always.Ask(ctx, Request{})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, Timeout, a, "a cancelled question is never a yes")
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		in   string
		want Answer
	}{
		{"yes", Yes}, {"no", No}, {"timeout", Timeout}, {"delay:1ms", Yes}, {"delay:1ms:no", No}, {"script:no", No},
	} {
		p, err := ParsePolicy(tc.in)
		require.NoError(t, err, tc.in)
		a, err := p.Ask(ctx, Request{})
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, a, tc.in)
	}
	for _, bad := range []string{"maybe", "delay:xyz", "script:yes,perhaps", "delay:1s:sometimes",
		"delay:-1s", "delay:11m", "delay", "script", "yes:please", "no:x", "manual:1"} {
		_, err := ParsePolicy(bad)
		require.Error(t, err, bad)
	}
}

func TestScriptFallsBack(t *testing.T) {
	t.Parallel()
	s := NewScript(Fixed(Timeout), No, Yes)
	var got []Answer
	for range 4 {
		a, err := s.Ask(context.Background(), Request{})
		require.NoError(t, err)
		got = append(got, a)
	}
	require.Equal(t, []Answer{No, Yes, Timeout, Timeout}, got)
	require.Zero(t, s.Remaining())
}

func TestDelayedWaitsOnTheKeysClock(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(epoch)
	a, err := Delayed{After: 800 * time.Millisecond, Answer: No}.Ask(context.Background(), Request{Clock: v})
	require.NoError(t, err)
	require.Equal(t, No, a)
	require.Equal(t, epoch.Add(800*time.Millisecond), v.Now(), "the user took 800 ms of the key's time")

	// Asked with a timeout shorter than the user's delay, the question ends at the timeout.
	ctx, cancel := clock.WithTimeout(context.Background(), v, 50*time.Millisecond)
	defer cancel()
	a, err = Delayed{After: time.Hour}.Ask(ctx, Request{Clock: v})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, Timeout, a)
	require.Equal(t, epoch.Add(850*time.Millisecond), v.Now())
}

func TestSwitchManualWaitsForTouch(t *testing.T) {
	t.Parallel()
	s := NewSwitch(Fixed(No))
	a, err := s.Ask(context.Background(), Request{})
	require.NoError(t, err)
	require.Equal(t, No, a)

	s.SetManual(true)
	done := make(chan Answer, 1)
	go func() {
		a, _ := s.Ask(context.Background(), Request{})
		done <- a
	}()
	select {
	case <-done:
		t.Fatal("manual policy answered without a touch")
	case <-time.After(30 * time.Millisecond):
	}
	s.Touch()
	require.Equal(t, Yes, <-done)
	require.Equal(t, 2, s.Asked())

	s.Touch()
	s.Untouch()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.Ask(ctx, Request{})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a withdrawn touch must not answer")
}

func TestSwitchHold(t *testing.T) {
	t.Parallel()
	s := NewSwitch(Always)
	s.Hold(false) // finger lifted: questions wait
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, err := s.Ask(ctx, Request{})
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan Answer, 1)
	go func() { a, _ := s.Ask(context.Background(), Request{}); done <- a }()
	for s.Asked() < 2 { // the question is being put (and would wait without the finger)
		runtime.Gosched()
	}
	s.Hold(true)
	require.Equal(t, Yes, <-done)
	for range 3 { // held: every question is answered at once
		a, err := s.Ask(context.Background(), Request{})
		require.NoError(t, err)
		require.Equal(t, Yes, a)
	}
	require.Equal(t, "manual (finger held: true)", s.String())
	s.Set(Fixed(No))
	a, _ := s.Ask(context.Background(), Request{})
	require.Equal(t, No, a)
	require.Equal(t, "no", s.String())
}

func TestDescribeRoundTrips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Always, "yes"}, {Fixed(No), "no"}, {Fixed(Timeout), "timeout"}, {nil, "timeout"},
		{Delayed{After: 800 * time.Millisecond, Answer: Yes}, "delay:800ms:yes"},
		{NewScript(Always, No, Yes), "script:no,yes"},
		{NewScript(Fixed(No), Yes), "script:yes then no"},
		{NewScript(Fixed(No)), "no"},
	} {
		require.Equal(t, tc.want, Describe(tc.p))
		if tc.p == nil || strings.Contains(tc.want, " then ") {
			continue
		}
		again, err := ParsePolicy(tc.want)
		require.NoError(t, err, tc.want)
		require.Equal(t, tc.want, Describe(again), "ParsePolicy(Describe(p)) is p again")
	}
}
