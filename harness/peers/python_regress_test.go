package peers

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/socket"
)

// Regression tests for what python-fido2 does on the wire, replayed in Go so they run without
// the peer installed.

const (
	hidPing  = 0x81
	hidInit  = 0x86
	hidError = 0xBF
)

func rawReport(cid uint32, body ...byte) []byte {
	r := make([]byte, ctaphid.ReportSize)
	binary.BigEndian.PutUint32(r, cid)
	copy(r[4:], body)
	return r
}

func rawChannel(ctx context.Context, t *testing.T, c ctaphid.ReportConn) uint32 {
	t.Helper()
	nonce := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	require.NoError(t, c.WriteReport(ctx, rawReport(0xffffffff, append([]byte{hidInit, 0, 8}, nonce...)...)))
	r, err := c.ReadReport(ctx)
	require.NoError(t, err)
	require.Equal(t, byte(hidInit), r[4])
	require.Equal(t, nonce, r[7:15])
	return binary.BigEndian.Uint32(r[15:19])
}

// python-fido2's ping of 7610 bytes (one more than CTAPHID can frame) sends the init packet and
// then all 129 continuation packets, the last with a wrapped sequence number, before reading.
// The key must answer ERR_INVALID_LEN once, ignore the stray continuations, and keep the channel.
func TestOversizeMessageLeavesChannelUsable(t *testing.T) {
	lk, err := ServeLocal(nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, lk.Close()) })
	c, err := socket.Dial("unix:" + lk.Socket)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cid := rawChannel(ctx, t, c)

	const n = 7610
	require.NoError(t, c.WriteReport(ctx, rawReport(cid, hidPing, n>>8, n&0xff)))
	for seq := 0; 57+seq*59 < n; seq++ {
		require.NoError(t, c.WriteReport(ctx, rawReport(cid, byte(seq&0x7f))))
	}
	r, err := c.ReadReport(ctx)
	require.NoError(t, err)
	require.Equal(t, []byte{hidError, 0, 1, byte(ctap.ErrInvalidLength)}, r[4:8])

	payload := []byte("still here")
	require.NoError(t, c.WriteReport(ctx, rawReport(cid, append([]byte{hidPing, 0, byte(len(payload))}, payload...)...)))
	r, err = c.ReadReport(ctx)
	require.NoError(t, err)
	require.Equal(t, cid, binary.BigEndian.Uint32(r), "answer on another channel")
	require.Equal(t, byte(hidPing), r[4], "stray answer before the ping's: % x", r[:8])
	require.True(t, bytes.Equal(payload, r[7:7+len(payload)]))
}
