package ctaphid_test

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/stretchr/testify/require"
)

// countingClock counts Now calls on a virtual clock.
type countingClock struct {
	*clock.Virtual
	nows atomic.Int32
}

func (c *countingClock) Now() time.Time { c.nows.Add(1); return c.Virtual.Now() }

// rawPort opens a plain port and collects the messages the device sends to it.
type rawPort struct {
	port *ctaphid.Port
	mu   sync.Mutex
	rx   ctaphid.Reassembler
	got  []ctaphid.Message
}

func openRaw(t *testing.T, d *ctaphid.Device) *rawPort {
	rp := &rawPort{}
	rp.port = d.Open(func(r []byte) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if msg, ok, err := rp.rx.Add(r); err == nil && ok {
			rp.got = append(rp.got, msg)
		}
	}, ctaphid.Direct())
	t.Cleanup(rp.port.Close)
	return rp
}

func (rp *rawPort) messages() []ctaphid.Message {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]ctaphid.Message(nil), rp.got...)
}

func concat(t *testing.T, cid uint32, cmd byte, payload []byte) []byte {
	t.Helper()
	reports, err := ctaphid.Fragment(cid, cmd, payload)
	require.NoError(t, err)
	var all []byte
	for _, r := range reports {
		all = append(all, r[:]...)
	}
	return all
}

// TestInputReportsIsInputPerReport: INIT, a multi-report PING, a trailing partial report and a
// message split across two calls give, through InputReports, the answers one Input per report
// gives.
func TestInputReportsIsInputPerReport(t *testing.T) {
	t.Parallel()
	run := func(batched bool) []ctaphid.Message {
		d, _ := virtualDevice(&fakeHandler{}, ctaphid.WithChannelRand(bytes.NewReader(bytes.Repeat([]byte{0x42}, 64))))
		rp := openRaw(t, d)
		deliver := func(reports []byte) {
			if batched {
				rp.port.InputReports(reports)
				return
			}
			for ; len(reports) >= ctaphid.ReportSize; reports = reports[ctaphid.ReportSize:] {
				rp.port.Input(reports[:ctaphid.ReportSize])
			}
		}
		deliver(concat(t, ctaphid.BroadcastCID, ctaphid.CmdInit, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
		cid := uint32(0x42424242)
		payload := bytes.Repeat([]byte{0xab}, 300)
		deliver(concat(t, cid, ctaphid.CmdPing, payload))
		deliver(append(concat(t, cid, ctaphid.CmdPing, []byte{9}), 1, 2, 3)) // a partial tail is dropped
		split := concat(t, cid, ctaphid.CmdPing, payload)
		deliver(split[:2*ctaphid.ReportSize])
		deliver(split[2*ctaphid.ReportSize:])
		return rp.messages()
	}
	per, batched := run(false), run(true)
	require.Len(t, per, 4)
	require.Equal(t, per, batched)
}

// TestInputReportsReadsNoClockForAWholeMessage: a message whose reports come in one call never
// starts the message timer (no clock read); a message left incomplete does, at that call's time,
// and still times out from there.
func TestInputReportsReadsNoClockForAWholeMessage(t *testing.T) {
	t.Parallel()
	c := &countingClock{Virtual: clock.NewVirtual(epoch)}
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo, ctaphid.WithClock(c), ctaphid.WithMessageTimeout(60*time.Millisecond),
		ctaphid.WithChannelRand(bytes.NewReader(bytes.Repeat([]byte{0x42}, 64))))
	rp := openRaw(t, d)
	rp.port.InputReports(concat(t, ctaphid.BroadcastCID, ctaphid.CmdInit, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	cid := uint32(0x42424242)
	before := c.nows.Load()
	rp.port.InputReports(concat(t, cid, ctaphid.CmdPing, make([]byte, 200)))
	require.Equal(t, before, c.nows.Load(), "a whole message read the clock")

	start := c.Virtual.Now()
	msg := concat(t, cid, ctaphid.CmdPing, make([]byte, 200))
	rp.port.InputReports(msg[:ctaphid.ReportSize])
	c.Advance(59 * time.Millisecond)
	require.Len(t, rp.messages(), 2, "no timeout before the deadline")
	c.Advance(time.Millisecond)
	got := rp.messages()
	require.Len(t, got, 3)
	require.Equal(t, ctaphid.Message{CID: cid, Cmd: ctaphid.CmdError, Payload: []byte{byte(ctaphid.ErrMsgTimeout)}}, got[2])
	require.Equal(t, 60*time.Millisecond, c.Virtual.Now().Sub(start))
}

// TestInputReportsAfterClose: reports to a closed port go nowhere.
func TestInputReportsAfterClose(t *testing.T) {
	t.Parallel()
	d, _ := virtualDevice(&fakeHandler{})
	rp := openRaw(t, d)
	rp.port.Close()
	rp.port.InputReports(concat(t, ctaphid.BroadcastCID, ctaphid.CmdInit, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	require.Empty(t, rp.messages())
}
