package emulator

import (
	"context"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// slowPersona is the default persona with the quirks of a slow key.
func slowPersona(t *testing.T, delayMs int, noKeepalive bool) *persona.Persona {
	t.Helper()
	p, err := persona.Builtin("default")
	require.NoError(t, err)
	p.Quirks.ProcessingDelayMs, p.Quirks.NoKeepalive = delayMs, noKeepalive
	return p
}

// getInfoTimeline sends getInfo over raw CTAPHID and returns, for every message of the answer,
// its command and when the key sent it after the request, on the key's clock.
func getInfoTimeline(t *testing.T, k *Key, c clock.Clock) (cmds []byte, at []time.Duration) {
	t.Helper()
	ctx := context.Background()
	conn := inproc.Connect(k.Device)
	defer conn.Close()
	hid := ctaphid.NewClient(conn)
	info, err := hid.Init(ctx)
	require.NoError(t, err)
	reports, err := ctaphid.Fragment(info.CID, ctaphid.CmdCBOR, []byte{byte(ctap.CmdGetInfo)})
	require.NoError(t, err)
	start := c.Now()
	require.NoError(t, conn.WriteReport(ctx, reports[0][:]))
	var rx ctaphid.Reassembler
	for {
		r, when, err := conn.ReadReportAt(ctx)
		require.NoError(t, err)
		msg, ok, err := rx.Add(r)
		require.NoError(t, err)
		if !ok {
			continue
		}
		cmds, at = append(cmds, msg.Cmd), append(at, when.Sub(start))
		if msg.Cmd != ctaphid.CmdKeepalive {
			require.Equal(t, byte(ctap.StatusOK), msg.Payload[0])
			return cmds, at
		}
	}
}

// TestSlowPersonaOnVirtualClock is what an in-process run of a slow persona looks like to a
// host: 1.5 s of processing per request on the key's clock, with the keepalives Windows needs
// every 100 ms (or none, for a persona without them), and no wall time spent.
func TestSlowPersonaOnVirtualClock(t *testing.T) {
	t.Parallel()
	for _, noKeepalive := range []bool{false, true} {
		v := clock.NewVirtual(epoch)
		k, err := Open(Options{Persona: slowPersona(t, 1500, noKeepalive), Clock: v})
		require.NoError(t, err)
		defer k.Close()
		require.Equal(t, 1500, k.Knobs().ProcessingDelayMs, "the quirk is the knob's initial value")
		require.Equal(t, !noKeepalive, k.Knobs().Keepalive)

		wall := clock.Real{}.Now()
		cmds, at := getInfoTimeline(t, k, v)
		require.Less(t, clock.Real{}.Now().Sub(wall), time.Second, "1.5 s of the key's time costs no wall time")
		var want []time.Duration
		var wantCmds []byte
		if !noKeepalive {
			for i := 1; i <= 15; i++ {
				want, wantCmds = append(want, time.Duration(i)*100*time.Millisecond), append(wantCmds, ctaphid.CmdKeepalive)
			}
		}
		want, wantCmds = append(want, 1500*time.Millisecond), append(wantCmds, ctaphid.CmdCBOR)
		require.Equal(t, want, at, "noKeepalive=%t", noKeepalive)
		require.Equal(t, wantCmds, cmds)
	}
}

// TestServedKeyWaitsInRealTime: on the wall clock (fidolab serve) the processing delay is real
// time, as a real slow key's is.
func TestServedKeyWaitsInRealTime(t *testing.T) {
	t.Parallel()
	k, err := Open(Options{Persona: slowPersona(t, 120, false)})
	require.NoError(t, err)
	defer k.Close()
	wall := clock.Real{}
	start := wall.Now()
	_, at := getInfoTimeline(t, k, wall)
	require.GreaterOrEqual(t, wall.Now().Sub(start), 120*time.Millisecond)
	require.GreaterOrEqual(t, at[len(at)-1], 120*time.Millisecond)
}

func TestSetKnobsIsAllOrNothing(t *testing.T) {
	t.Parallel()
	k, err := Open(Options{})
	require.NoError(t, err)
	defer k.Close()
	before := k.Knobs()
	for name, change := range map[string]func(*Knobs){
		"bad user":       func(n *Knobs) { n.User = "sometimes" },
		"bad status":     func(n *Knobs) { n.FailNext = []string{"CTAP2_OK", "ERR_NONSENSE"} },
		"negative delay": func(n *Knobs) { n.ProcessingDelayMs = -1 },
		"huge delay":     func(n *Knobs) { n.ProcessingDelayMs = maxDelayMs + 1 },
		"zero keepalive": func(n *Knobs) { n.KeepaliveIntervalMs = 0 },
		"negative quiet": func(n *Knobs) { n.Silent = -2 },
	} {
		n := before
		n.Plugged, n.Keepalive, n.ProcessingDelayMs = false, false, 30 // valid changes alongside the bad one
		change(&n)
		require.Error(t, k.SetKnobs(n), name)
		require.Equal(t, before, k.Knobs(), "%s: nothing changed", name)
	}

	n := before
	n.User, n.FingerHeld, n.Silent, n.MessageTimeoutMs = "manual", true, 2, 20
	require.NoError(t, k.SetKnobs(n))
	require.Equal(t, n, k.Knobs())
	p, manual, held := k.User.Current()
	require.True(t, manual)
	require.True(t, held)
	require.Equal(t, "yes", userString(p, false), "manual mode keeps the policy it interrupts")
	require.Equal(t, 20*time.Millisecond, k.Device.Timing().MessageTimeout)

	// A policy set from Go survives a round trip of the knobs.
	k.User.Set(customPolicy{})
	n = k.Knobs()
	require.Equal(t, "emulator.customPolicy", n.User)
	require.NoError(t, k.SetKnobs(n))
	cur, _, _ := k.User.Current()
	require.Equal(t, customPolicy{}, cur)
}

type customPolicy struct{}

func (customPolicy) Ask(context.Context, user.Request) (user.Answer, error) { return user.Timeout, nil }
