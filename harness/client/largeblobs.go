package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
)

// largeBlobOverhead is what CTAP 2.1 §6.10 reserves of maxMsgSize for the request around a fragment.
const largeBlobOverhead = 64

// maxLargeBlobReads bounds the read loop; the largest array a key may advertise fits in far fewer
// fragments, so hitting it means the key keeps returning full fragments forever.
const maxLargeBlobReads = 4096

// ErrLargeBlobIntegrity reports a serialized large-blob array whose trailing hash does not match.
var ErrLargeBlobIntegrity = errors.New("client: large-blob array hash does not match")

// LargeBlobs reads and writes the key's large-blob array.
type LargeBlobs struct{ c *Client }

// LargeBlobs returns the large-blob commands.
func (c *Client) LargeBlobs() *LargeBlobs { return &LargeBlobs{c: c} }

func (l *LargeBlobs) fragment(ctx context.Context) (int, error) {
	n, err := l.c.maxMsgSize(ctx)
	if err != nil {
		return 0, err
	}
	if n <= largeBlobOverhead {
		return 0, fmt.Errorf("client: maxMsgSize %d leaves no room for large-blob fragments", n)
	}
	return n - largeBlobOverhead, nil
}

// Read returns the large-blob array (the CBOR array, without its trailing hash) after checking
// the hash over the whole serialized array.
func (l *LargeBlobs) Read(ctx context.Context) ([]byte, error) {
	frag, err := l.fragment(ctx)
	if err != nil {
		return nil, err
	}
	var all []byte
	for i := 0; ; i++ {
		if i >= maxLargeBlobReads {
			return nil, fmt.Errorf("%w: large-blob array never ends", ErrMalformedResponse)
		}
		var resp ctap.LargeBlobsResponse
		req := &ctap.LargeBlobsRequest{Get: ctap.Uint(uint64(frag)), Offset: ctap.Uint(uint64(len(all)))}
		if err := l.c.call(ctx, ctap.CmdLargeBlobs, req, &resp); err != nil {
			return nil, err
		}
		if len(resp.Config) > frag {
			return nil, fmt.Errorf("%w: large-blob fragment of %d bytes, asked for %d", ErrMalformedResponse, len(resp.Config), frag)
		}
		all = append(all, resp.Config...)
		if len(resp.Config) < frag {
			break
		}
	}
	return VerifyLargeBlobArray(all)
}

// VerifyLargeBlobArray checks the 16-byte trailing hash of a serialized large-blob array and
// returns the array without it.
func VerifyLargeBlobArray(serialized []byte) ([]byte, error) {
	if len(serialized) < 17 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrLargeBlobIntegrity, len(serialized))
	}
	body, tag := serialized[:len(serialized)-16], serialized[len(serialized)-16:]
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:16], tag) {
		return nil, ErrLargeBlobIntegrity
	}
	return body, nil
}

// Write replaces the large-blob array with array (a CBOR array), appending its hash and sending
// it in fragments of at most maxMsgSize−64 bytes. tok needs the lbw permission; nil sends none,
// for keys without a PIN or UV.
func (l *LargeBlobs) Write(ctx context.Context, array []byte, tok *Token) error {
	frag, err := l.fragment(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(array)
	data := append(bytes.Clone(array), sum[:16]...)
	for off := 0; off < len(data); off += frag {
		chunk := data[off:min(off+frag, len(data))]
		req := &ctap.LargeBlobsRequest{Set: chunk, Offset: ctap.Uint(uint64(off))}
		if off == 0 {
			req.Length = ctap.Uint(uint64(len(data)))
		}
		if tok != nil {
			req.PinUvAuthProtocol = tok.ProtocolParam()
			req.PinUvAuthParam = tok.Auth(largeBlobAuthMessage(off, chunk))
		}
		if err := l.c.call(ctx, ctap.CmdLargeBlobs, req, nil); err != nil {
			return fmt.Errorf("client: large-blob fragment at %d: %w", off, err)
		}
	}
	return nil
}

// largeBlobAuthMessage is 32×0xff ‖ 0x0c 0x00 ‖ uint32LE(offset) ‖ SHA-256(fragment).
func largeBlobAuthMessage(offset int, fragment []byte) []byte {
	msg := bytes.Repeat([]byte{0xff}, 32)
	msg = append(msg, byte(ctap.CmdLargeBlobs), 0x00)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(offset))
	sum := sha256.Sum256(fragment)
	return append(msg, sum[:]...)
}
