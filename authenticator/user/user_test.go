package user

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
	for _, bad := range []string{"maybe", "delay:xyz", "script:yes,perhaps", "delay:1s:sometimes"} {
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

func TestDelayedCancels(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := Delayed{After: time.Hour}.Ask(ctx, Request{})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), time.Second)
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
	time.Sleep(10 * time.Millisecond)
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
