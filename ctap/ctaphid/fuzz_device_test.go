package ctaphid

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type echoHandler struct{}

func (echoHandler) HandleCBOR(ctx context.Context, req []byte, setStatus func(byte)) []byte {
	if len(req) > 0 && req[0] == 0x02 { // "needs a touch": report it, then give up as a user would
		setStatus(StatusUPNeeded)
		select {
		case <-ctx.Done():
			return []byte{0x2D}
		case <-time.After(time.Millisecond):
		}
	}
	return append([]byte{0}, req...)
}
func (echoHandler) HandleMSG(_ context.Context, apdu []byte) []byte { return append(apdu, 0x90, 0) }
func (echoHandler) Wink()                                           {}

// countingReader yields 0,0,0,1, 0,0,0,2, …: big-endian channel IDs 1, 2, 3…
type countingReader struct{ n uint32 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := 0; i+4 <= len(p); i += 4 {
		c.n++
		binary.BigEndian.PutUint32(p[i:], c.n)
	}
	return len(p) - len(p)%4, nil
}

var responseCmds = map[byte]bool{CmdPing: true, CmdMsg: true, CmdLock: true, CmdInit: true,
	CmdWink: true, CmdCBOR: true, CmdKeepalive: true, CmdError: true}

func frames(cid uint32, cmd byte, payload []byte) []byte {
	reports, _ := Fragment(cid, cmd, payload)
	var out []byte
	for _, r := range reports {
		out = append(out, r[:]...)
	}
	return out
}

// FuzzDeviceInput writes arbitrary reports into a Device. It must never panic, and everything it
// sends must be well-formed CTAPHID: known response commands, consistent sequence numbers and lengths,
// known error codes, 1-byte keepalives with a known status, 17-byte INIT answers with a usable CID.
func FuzzDeviceInput(f *testing.F) {
	initB := frames(BroadcastCID, CmdInit, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(cat(initB, frames(1, CmdPing, bytes.Repeat([]byte{9}, 200))))
	f.Add(cat(initB, frames(1, CmdCBOR, []byte{2}), frames(1, CmdCancel, nil)))
	f.Add(cat(initB, frames(1, CmdLock, []byte{3}), frames(2, CmdPing, nil), initB))
	f.Add(cat(initB, frames(1, CmdMsg, []byte{0, 1, 0, 0}), frames(1, CmdWink, nil)))
	f.Add(cat(initB, report(1, CmdPing, 0, 100), report(1, 5), frames(0, CmdPing, nil)))
	f.Add(cat(initB, frames(1, CmdInit, []byte{1, 2, 3}), report(1, 0x80, 0xff, 0xff), []byte{1, 2}))
	f.Fuzz(func(t *testing.T, stream []byte) {
		// Channels 1, 2, 3… as the seeds expect: random ones would leave the fuzzer nothing to find.
		d := NewDevice(echoHandler{}, DeviceInfo{Capabilities: CapWink | CapCBOR}, WithMessageTimeout(time.Millisecond),
			WithChannelRand(&countingReader{}))
		var mu sync.Mutex
		var out [][]byte
		p := d.Open(func(r []byte) {
			mu.Lock()
			out = append(out, bytes.Clone(r))
			mu.Unlock()
		})
		for len(stream) >= ReportSize {
			p.Input(stream[:ReportSize])
			stream = stream[ReportSize:]
		}
		p.Input(stream) // a short tail is dropped
		// Let the last handler call finish so each run does the same work (the fuzzer needs
		// reproducible coverage), then drop everything.
		d.mu.Lock()
		last := d.lastJob.endedChan()
		d.mu.Unlock()
		if last != nil {
			<-last
		}
		p.Close()
		d.PowerCycle()

		mu.Lock()
		defer mu.Unlock()
		var rx Reassembler
		for _, r := range out {
			require.Len(t, r, ReportSize)
			if IsInit(r) {
				require.True(t, responseCmds[r[4]], "response command %02x", r[4])
			}
			msg, ok, err := rx.Add(r)
			require.NoError(t, err, "device output does not reassemble")
			if !ok {
				continue
			}
			switch msg.Cmd {
			case CmdError:
				require.Len(t, msg.Payload, 1)
				require.Contains(t, errorNames, ErrorCode(msg.Payload[0]))
			case CmdKeepalive:
				require.Len(t, msg.Payload, 1)
				require.Contains(t, []byte{StatusProcessing, StatusUPNeeded}, msg.Payload[0])
			case CmdInit:
				require.Len(t, msg.Payload, 17)
				require.Equal(t, ProtocolVersion, msg.Payload[12])
				cid := binary.BigEndian.Uint32(msg.Payload[8:])
				require.NotZero(t, cid)
				require.NotEqual(t, BroadcastCID, cid)
			}
		}
	})
}
