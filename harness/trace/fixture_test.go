package trace_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the trace fixtures in testdata")

// sessionCommands is what the session fixture holds, in order.
var sessionCommands = []string{"INIT", "authenticatorGetInfo", "authenticatorClientPIN", "authenticatorClientPIN",
	"authenticatorGetInfo", "authenticatorClientPIN", "authenticatorClientPIN", "authenticatorClientPIN",
	"authenticatorClientPIN", "authenticatorMakeCredential", "authenticatorClientPIN", "authenticatorClientPIN",
	"authenticatorClientPIN", "authenticatorGetAssertion", "authenticatorClientPIN", "authenticatorClientPIN"}

func commandsOf(t *testing.T, data []byte) []string {
	t.Helper()
	_, recs := readAll(t, data)
	var out []string
	for _, x := range exchanges(recs) {
		if x.Request.Command != "" {
			out = append(out, x.Request.Command)
		} else {
			out = append(out, x.Request.HID)
		}
	}
	return out
}

// TestSessionFixture keeps testdata/session.trace.jsonl (used by docs/traces.md and the pcap
// and show tests) readable by this version: a version-1 trace recorded earlier must still read.
// go test ./harness/trace -run TestSessionFixture -update records it anew.
func TestSessionFixture(t *testing.T) {
	path := filepath.Join("testdata", "session.trace.jsonl")
	if *update {
		_, redacted, _ := record(t)
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, redacted, 0o644))
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, sessionCommands, commandsOf(t, data))
	require.NotContains(t, string(data), `"secrets":true`)
}

// TestDeviceTapRecordsAServedKey records on the device side of the socket transport: the same
// session, seen from inside the key, gives the same exchanges.
func TestDeviceTapRecordsAServedKey(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	clk := newClock()
	rec, err := trace.NewRecorder(&buf, trace.Options{Now: clk.Now, Tool: "test"})
	require.NoError(t, err)

	addr := "unix:" + filepath.Join(t.TempDir(), "k.sock")
	l, err := socket.Listen(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	served, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	defer served.Close()
	served.Device.SetTap(rec.DeviceTap(trace.Source{Transport: "socket", Endpoint: addr}))
	go func() { done <- socket.Serve(ctx, l, served.Device) }()

	conn, err := socket.Dial(addr)
	require.NoError(t, err)
	hid := ctaphid.NewClient(conn)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	_, err = hid.Init(cctx)
	require.NoError(t, err)
	_, err = hid.CBOR(cctx, []byte{0x04})
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, rec.Close())

	_, recs := readAll(t, buf.Bytes())
	require.Equal(t, trace.TypeSource, recs[0].Type)
	require.Equal(t, trace.SideDevice, recs[0].Side)
	require.Equal(t, addr, recs[0].Endpoint)
	require.Equal(t, []string{"INIT", "authenticatorGetInfo"}, commandsOf(t, buf.Bytes()))
	var reports int
	for _, r := range recs {
		if r.Type == trace.TypeReport {
			reports++
		}
	}
	require.GreaterOrEqual(t, reports, 4, "INIT and getInfo, a request and an answer each")
}

// TestConnKeepsDeviceTimes: wrapping an in-process connection keeps its device-clock reads
// (ctaphid.TimedReportConn), and the key's reports are recorded at those times.
func TestConnKeepsDeviceTimes(t *testing.T) {
	t.Parallel()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	defer k.Close()
	var buf bytes.Buffer
	rec, err := trace.NewRecorder(&buf, trace.Options{})
	require.NoError(t, err)
	conn := rec.Conn(k.Connect(), trace.Source{Transport: "inproc"})
	tc, ok := conn.(ctaphid.TimedReportConn)
	require.True(t, ok, "the wrapper still tells the device's times")
	hid := ctaphid.NewClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	var init [64]byte
	copy(init[:], []byte{0xff, 0xff, 0xff, 0xff, 0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	require.NoError(t, conn.WriteReport(ctx, init[:]))
	_, at, err := tc.ReadReportAt(ctx)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	require.NoError(t, rec.Close())
	_, recs := readAll(t, buf.Bytes())
	var last *trace.Record
	for _, r := range recs {
		if r.Type == trace.TypeReport && r.From == trace.FromKey {
			last = r
		}
	}
	require.NotNil(t, last)
	require.True(t, last.T.Equal(at.UTC()), "recorded at %v, device said %v", last.T, at)
}
