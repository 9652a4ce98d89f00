package ctaphid

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestFragmentRoundTrip(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, InitPayloadSize, InitPayloadSize + 1, InitPayloadSize + ContPayloadSize,
		InitPayloadSize + ContPayloadSize + 1, 1024, MaxMessageSize} {
		payload := pattern(n)
		reports, err := Fragment(0x01020304, CmdPing, payload)
		require.NoError(t, err)
		require.Len(t, reports, PacketCount(n), "size %d", n)
		require.Equal(t, []byte{1, 2, 3, 4, CmdPing, byte(n >> 8), byte(n)}, reports[0][:7])
		for i, r := range reports[1:] {
			require.Equal(t, byte(i), r[4], "sequence number")
		}
		var rx Reassembler
		for i, r := range reports {
			msg, ok, err := rx.Add(r[:])
			require.NoError(t, err)
			require.Equal(t, i == len(reports)-1, ok, "size %d packet %d", n, i)
			if ok {
				require.Equal(t, uint32(0x01020304), msg.CID)
				require.Equal(t, CmdPing, msg.Cmd)
				require.True(t, bytes.Equal(payload, msg.Payload), "size %d", n)
			}
		}
	}
}

func TestFragmentLimits(t *testing.T) {
	t.Parallel()
	require.Equal(t, 7609, MaxMessageSize)
	require.Equal(t, 129, PacketCount(MaxMessageSize))
	_, err := Fragment(1, CmdPing, make([]byte, MaxMessageSize+1))
	require.ErrorIs(t, err, ErrMessageTooLarge)

	// AppendFragments reuses the caller's storage.
	buf := make([][ReportSize]byte, 0, 8)
	out, err := AppendFragments(buf, 1, CmdCBOR, pattern(100))
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.Equal(t, &buf[:1][0], &out[0])
}

func report(cid uint32, b4 byte, rest ...byte) []byte {
	r := make([]byte, ReportSize)
	binary.BigEndian.PutUint32(r, cid)
	r[4] = b4
	copy(r[5:], rest)
	return r
}

func TestReassemblerRules(t *testing.T) {
	t.Parallel()
	const a, b = 0x0a0a0a0a, 0x0b0b0b0b
	two, _ := Fragment(a, CmdPing, pattern(100)) // init + seq 0
	three, _ := Fragment(a, CmdPing, pattern(150))
	twoB, _ := Fragment(b, CmdCBOR, pattern(90))
	type step struct {
		r       []byte
		wantOK  bool
		wantErr error
		wantCmd byte
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"continuation without init is ignored", []step{{r: report(a, 0)}}},
		{"short report", []step{{r: make([]byte, 63), wantErr: ErrReportSize}}},
		{"long report", []step{{r: make([]byte, 65), wantErr: ErrReportSize}}},
		{"length over maximum", []step{{r: report(a, CmdPing, 0x1d, 0xba), wantErr: ErrInvalidLen}}},
		{"length at maximum starts a message", []step{{r: report(a, CmdPing, 0x1d, 0xb9)}}},
		{"wrong sequence", []step{{r: three[0][:]}, {r: three[2][:], wantErr: ErrInvalidSeq},
			{r: three[1][:]}}}, // dropped after the error, so seq 0 is now stray and ignored
		{"init packet mid-message is a sequence error", []step{{r: two[0][:]},
			{r: report(a, CmdPing, 0, 1, 9), wantErr: ErrInvalidSeq}, {r: two[1][:]}}},
		{"INIT mid-message resyncs", []step{{r: two[0][:]},
			{r: report(a, CmdInit, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8), wantOK: true, wantCmd: CmdInit}, {r: two[1][:]}}},
		{"interleaved channels", []step{{r: two[0][:]}, {r: twoB[0][:]}, {r: twoB[1][:], wantOK: true, wantCmd: CmdCBOR},
			{r: two[1][:], wantOK: true, wantCmd: CmdPing}}},
		{"continuation on another channel is ignored", []step{{r: two[0][:]}, {r: report(b, 0)},
			{r: two[1][:], wantOK: true, wantCmd: CmdPing}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rx Reassembler
			for i, s := range tc.steps {
				msg, ok, err := rx.Add(s.r)
				if s.wantErr != nil {
					require.ErrorIs(t, err, s.wantErr, "step %d", i)
				} else {
					require.NoError(t, err, "step %d", i)
				}
				require.Equal(t, s.wantOK, ok, "step %d", i)
				if ok {
					require.Equal(t, s.wantCmd, msg.Cmd, "step %d", i)
				}
			}
		})
	}
}

func TestReassemblerAbortReset(t *testing.T) {
	t.Parallel()
	var rx Reassembler
	two, _ := Fragment(5, CmdPing, pattern(100))
	_, _, _ = rx.Add(two[0][:])
	require.True(t, rx.Pending(5))
	require.True(t, rx.Abort(5))
	require.False(t, rx.Abort(5))
	_, _, _ = rx.Add(two[0][:])
	rx.Reset()
	require.False(t, rx.Pending(5))
	_, ok, err := rx.Add(two[1][:])
	require.NoError(t, err)
	require.False(t, ok)
}

func TestErrorCodeNames(t *testing.T) {
	t.Parallel()
	require.Equal(t, "ERR_CHANNEL_BUSY", ErrChannelBusy.String())
	require.Equal(t, "ctaphid: ERR_INVALID_SEQ", ErrInvalidSeq.Error())
	require.Equal(t, "ERR_0x42", ErrorCode(0x42).String())
	var err error = &HIDError{CID: 7, Code: ErrMsgTimeout}
	require.ErrorIs(t, err, ErrMsgTimeout)
	require.Contains(t, err.Error(), "ERR_MSG_TIMEOUT")
}

// FuzzReassembler feeds arbitrary report streams: it must never panic, every message it returns must
// respect the length limits, and a fragmented message interleaved with noise on other channels must
// come back byte for byte.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{}, []byte("hello"), uint32(1))
	f.Add(bytes.Repeat([]byte{0xff}, 300), pattern(200), uint32(0xffffffff))
	two, _ := Fragment(9, CmdCBOR, pattern(120))
	f.Add(append(two[0][:], two[1][:]...), pattern(7609)[:3000], uint32(9))
	f.Fuzz(func(t *testing.T, noise, payload []byte, cid uint32) {
		var rx Reassembler
		for len(noise) >= ReportSize {
			msg, ok, err := rx.Add(noise[:ReportSize])
			if err == nil && ok {
				require.LessOrEqual(t, len(msg.Payload), MaxMessageSize)
				require.NotZero(t, msg.Cmd&0x80)
			}
			noise = noise[ReportSize:]
		}
		if len(payload) > MaxMessageSize {
			payload = payload[:MaxMessageSize]
		}
		rx.Abort(cid) // the noise may have left a message in progress on cid
		reports, err := Fragment(cid, CmdPing, payload)
		require.NoError(t, err)
		for i, r := range reports {
			msg, ok, err := rx.Add(r[:])
			require.NoError(t, err)
			require.Equal(t, i == len(reports)-1, ok)
			if i < len(reports)-1 {
				// Noise on another channel between fragments must not disturb the message.
				_, _, _ = rx.Add(report(cid^1, byte(i)))
				continue
			}
			require.Equal(t, cid, msg.CID)
			require.Equal(t, CmdPing, msg.Cmd)
			require.True(t, bytes.Equal(payload, msg.Payload))
		}
	})
}
