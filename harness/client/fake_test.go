package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/stretchr/testify/require"
)

// step is one scripted exchange: the request the test expects (nil: any) and the answer.
type step struct {
	want []byte
	resp []byte
	err  error
}

// script is a fake Transport that answers from a list of steps, in order, and fails the test
// on an unexpected request.
type script struct {
	t     testing.TB
	steps []step
	got   [][]byte
}

func (s *script) next(req []byte) ([]byte, error) {
	s.t.Helper()
	s.got = append(s.got, bytes.Clone(req))
	if len(s.steps) == 0 {
		s.t.Fatalf("unexpected request %x", req)
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	if st.want != nil {
		require.Equal(s.t, fmt.Sprintf("%x", st.want), fmt.Sprintf("%x", req), "request bytes")
	}
	return st.resp, st.err
}

func (s *script) CBOR(_ context.Context, req []byte) ([]byte, error) { return s.next(req) }
func (s *script) Msg(_ context.Context, apdu []byte) ([]byte, error) { return s.next(apdu) }

// ok returns status OK followed by the CBOR encoding of v (nothing for nil).
func ok(t testing.TB, v any) []byte {
	t.Helper()
	if v == nil {
		return []byte{0}
	}
	b, err := ctap.Marshal(v)
	require.NoError(t, err)
	return append([]byte{0}, b...)
}

// fakeKey is just enough of an authenticator for the PIN protocol, large blobs and scripted
// answers for everything else. It keeps every secret it sees so tests can look for them in traces.
type fakeKey struct {
	t        testing.TB
	info     ctap.GetInfoResponse
	ka       *pinuv.KeyAgreement
	pinHash  []byte
	token    []byte
	blobs    []byte
	secrets  [][]byte // every secret value that crossed the wire, plain or encrypted
	cbor     func(req []byte) ([]byte, bool)
	failNext ctap.Status
}

func newFakeKey(t testing.TB) *fakeKey {
	ka, err := pinuv.NewKeyAgreement(nil)
	require.NoError(t, err)
	return &fakeKey{
		t:  t,
		ka: ka,
		info: ctap.GetInfoResponse{
			Versions: []string{ctap.VersionFIDO20, ctap.VersionFIDO21}, AAGUID: make([]byte, 16),
			Options:            map[string]bool{"clientPin": false, "pinUvAuthToken": true, "largeBlobs": true, "credMgmt": true},
			PinUvAuthProtocols: []uint64{2, 1}, MaxMsgSize: 1200,
		},
		token: pinuv.NewToken(nil),
	}
}

func (f *fakeKey) Msg(context.Context, []byte) ([]byte, error) { return nil, errors.New("no U2F") }

func (f *fakeKey) CBOR(_ context.Context, req []byte) ([]byte, error) {
	if f.failNext != 0 {
		s := f.failNext
		f.failNext = 0
		return []byte{byte(s)}, nil
	}
	if f.cbor != nil {
		if resp, handled := f.cbor(req); handled {
			return resp, nil
		}
	}
	switch ctap.Command(req[0]) {
	case ctap.CmdGetInfo:
		return ok(f.t, &f.info), nil
	case ctap.CmdClientPIN:
		return f.clientPIN(req[1:]), nil
	case ctap.CmdLargeBlobs:
		return f.largeBlobs(req[1:]), nil
	}
	return []byte{byte(ctap.ErrInvalidCommand)}, nil
}

func (f *fakeKey) shared(r *ctap.ClientPINRequest) (pinuv.Protocol, []byte) {
	p, _ := pinuv.ByVersion(int(*r.PinUvAuthProtocol))
	peer, err := cose.Unmarshal(r.KeyAgreement)
	require.NoError(f.t, err)
	ss, err := f.ka.SharedSecret(p, peer)
	require.NoError(f.t, err)
	return p, ss
}

func (f *fakeKey) clientPIN(body []byte) []byte {
	r, err := ctap.DecodeClientPIN(body)
	require.NoError(f.t, err)
	f.secrets = append(f.secrets, r.PinUvAuthParam, r.NewPinEnc, r.PinHashEnc)
	switch *r.SubCommand {
	case ctap.PINGetKeyAgreement:
		return ok(f.t, &ctap.ClientPINResponse{KeyAgreement: mustMarshal(f.t, f.ka.PublicCOSE())})
	case ctap.PINGetRetries:
		return ok(f.t, &ctap.ClientPINResponse{PINRetries: ctap.Uint(8), PowerCycleState: ctap.Bool(false)})
	case ctap.PINSetPIN:
		p, ss := f.shared(r)
		require.True(f.t, p.Verify(ss, r.NewPinEnc, r.PinUvAuthParam), "setPIN pinUvAuthParam")
		padded, err := p.Decrypt(ss, r.NewPinEnc)
		require.NoError(f.t, err)
		pin, err := pinuv.UnpadPIN(padded)
		require.NoError(f.t, err)
		f.pinHash = pinuv.PINHash(string(pin))
		f.info.Options["clientPin"] = true
		return ok(f.t, nil)
	case ctap.PINGetPinUvAuthTokenUsingPinWithPerms, ctap.PINGetPinToken:
		p, ss := f.shared(r)
		ph, err := p.Decrypt(ss, r.PinHashEnc)
		require.NoError(f.t, err)
		if !bytes.Equal(ph, f.pinHash) {
			return []byte{byte(ctap.ErrPINInvalid)}
		}
		enc, err := p.Encrypt(ss, f.token)
		require.NoError(f.t, err)
		f.secrets = append(f.secrets, enc, f.token)
		return ok(f.t, &ctap.ClientPINResponse{PinUvAuthToken: enc})
	}
	return []byte{byte(ctap.ErrInvalidSubcommand)}
}

func (f *fakeKey) largeBlobs(body []byte) []byte {
	r, err := ctap.DecodeLargeBlobs(body)
	require.NoError(f.t, err)
	off := int(*r.Offset)
	if r.Get != nil {
		end := min(off+int(*r.Get), len(f.blobs))
		return ok(f.t, &ctap.LargeBlobsResponse{Config: f.blobs[min(off, end):end]})
	}
	// Authenticate the fragment with protocol two, as the client under test negotiates it.
	sum := sha256.Sum256(r.Set)
	msg := append(bytes.Repeat([]byte{0xff}, 32), 0x0c, 0x00, byte(off), byte(off>>8), byte(off>>16), byte(off>>24))
	msg = append(msg, sum[:]...)
	if !(pinuv.V2{}).Verify(f.token, msg, r.PinUvAuthParam) {
		return []byte{byte(ctap.ErrPINAuthInvalid)}
	}
	f.secrets = append(f.secrets, r.PinUvAuthParam)
	if off == 0 {
		f.blobs = nil
	}
	require.Equal(f.t, len(f.blobs), off, "fragments arrive in order")
	f.blobs = append(f.blobs, r.Set...)
	return ok(f.t, nil)
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := ctap.Marshal(v)
	require.NoError(t, err)
	return b
}
