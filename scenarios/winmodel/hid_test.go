package winmodel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/stretchr/testify/require"
)

// TestWindowsGivesUpOnSilentKey: a key that takes 1.5 s per request passes while it sends
// keepalives and times out without them; the limit is Windows' half second, measured on the
// key's virtual clock, so the outcome is the same on every run and costs no wall time.
func TestWindowsGivesUpOnSilentKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		quirks string
		want   string
	}{
		{"{processingDelayMs: 1500}", "registered as alice@contoso.com"},
		{"{noKeepalive: true, processingDelayMs: 1500}", "error timeout"},
		{"{noKeepalive: true, processingDelayMs: 400}", "registered as alice@contoso.com"},
		{"{noKeepalive: true, processingDelayMs: 600}", "error timeout"},
	} {
		k := newKey(t, "base: default\nname: slow\nquirks: "+tc.quirks+"\n")
		h := newHost(t, goodConfig(), k)
		start := k.Now()
		out, notes := do(t, h, host.Action{Name: host.ActRegister, Account: "alice@contoso.com", PIN: "1234"})
		require.Equal(t, tc.want, out.String(), "%s: %s %v", tc.quirks, out.Reason, notes)
		if out.Code == host.CodeTimeout {
			require.Contains(t, out.Reason, "getInfo", "the first request already fails")
			require.Contains(t, out.Reason, "after the request (no CTAPHID_KEEPALIVE in time)")
			require.Contains(t, out.Reason, "Windows gives up after 500ms")
			continue
		}
		require.Greater(t, k.Now().Sub(start), time.Second, "%s: the key's time passed", tc.quirks)
	}
}

// TestWindowsGivesUpOnSlowKeepalives: keepalives that come less often than the limit do not help.
func TestWindowsGivesUpOnSlowKeepalives(t *testing.T) {
	t.Parallel()
	k := newKey(t, "base: default\nname: slow\nquirks: {processingDelayMs: 1500}\n")
	_, err := k.k.UpdateKnobs(func(n *emuKnobs) error { n.KeepaliveIntervalMs = 800; return nil })
	require.NoError(t, err)
	h := newHost(t, goodConfig(), k)
	out, _ := do(t, h, host.Action{Name: host.ActRegister, Account: "alice@contoso.com", PIN: "1234"})
	require.Equal(t, "error timeout", out.String())
	require.Contains(t, out.Reason, "the key sent nothing for 800ms after the request", out.Reason)
}

// silentConn answers nothing: a key outside the process that hung.
type silentConn struct{ closed chan struct{} }

func (c *silentConn) WriteReport(context.Context, []byte) error { return nil }
func (c *silentConn) ReadReport(ctx context.Context) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closed:
		return nil, errors.New("closed")
	}
}
func (c *silentConn) Close() error {
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return nil
}

// TestWindowsHIDWallClock: a connection without report times (a served or real key) is given up
// on when nothing arrives within the limit (plus the slack) of the wall clock (a virtual one
// here), and closed.
func TestWindowsHIDWallClock(t *testing.T) {
	t.Parallel()
	for _, slack := range []time.Duration{0, 2 * time.Second} {
		wallClockGivesUp(t, slack)
	}
}

func wallClockGivesUp(t *testing.T, slack time.Duration) {
	wall := clock.NewVirtual(time.Date(2026, 3, 6, 9, 0, 0, 0, time.UTC))
	conn := &silentConn{closed: make(chan struct{})}
	w := hidFor(nil, SilenceLimit, slack, wall)(conn)
	_, isTimed := w.(*windowsHID)
	require.True(t, isTimed)
	require.NoError(t, w.WriteReport(context.Background(), make([]byte, ctaphid.ReportSize)))
	errc := make(chan error, 1)
	go func() { _, err := w.ReadReport(context.Background()); errc <- err }()
	for wall.Pending() == 0 { // the read has armed its deadline
		select {
		case err := <-errc:
			t.Fatalf("read ended before the deadline: %v", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	wall.Advance(SilenceLimit + slack - time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("gave up before the limit: %v", err)
	default:
	}
	wall.Advance(2 * time.Millisecond)
	err := <-errc
	var se *SilenceError
	require.ErrorAs(t, err, &se)
	require.True(t, se.Wall)
	require.Equal(t, SilenceLimit+slack+time.Millisecond, se.Silent)
	require.True(t, strings.HasPrefix(fmt.Sprint(err), "the key sent nothing for "+(SilenceLimit+slack+time.Millisecond).String()), err.Error())
	select {
	case <-conn.closed:
	default:
		t.Fatal("the connection was not closed")
	}
}
