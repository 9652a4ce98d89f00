package trace_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
)

func readAll(t *testing.T, data []byte) (trace.Header, []*trace.Record) {
	t.Helper()
	r, err := trace.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	var recs []*trace.Record
	for rec, err := range r.All() {
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	return r.Header(), recs
}

func exchanges(recs []*trace.Record) []*trace.Record {
	var out []*trace.Record
	for _, r := range recs {
		if r.Type == trace.TypeExchange {
			out = append(out, r)
		}
	}
	return out
}

// wireSecrets pulls every secret that crossed the wire out of an unredacted trace, decoding the
// messages with the ctap types (not with the trace's own tables, which are what is under test).
func wireSecrets(t *testing.T, recs []*trace.Record) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	add := func(name string, b []byte) {
		if len(b) > 0 {
			out[name+"#"+hex.EncodeToString(b[:4])] = b
		}
	}
	for _, x := range exchanges(recs) {
		if x.Request == nil || x.Request.HID != "CBOR" || x.Response == nil {
			continue
		}
		req, _ := x.Request.Payload()
		resp, _ := x.Response.Payload()
		switch ctap.Command(req[0]) {
		case ctap.CmdClientPIN:
			var q ctap.ClientPINRequest
			require.NoError(t, ctap.Unmarshal(req[1:], &q))
			add("pinUvAuthParam", q.PinUvAuthParam)
			add("newPinEnc", q.NewPinEnc)
			add("pinHashEnc", q.PinHashEnc)
			if len(resp) > 1 {
				var a ctap.ClientPINResponse
				require.NoError(t, ctap.Unmarshal(resp[1:], &a))
				add("pinUvAuthToken(encrypted)", a.PinUvAuthToken)
			}
		case ctap.CmdMakeCredential:
			var q ctap.MakeCredentialRequest
			require.NoError(t, ctap.Unmarshal(req[1:], &q))
			add("makeCredential pinUvAuthParam", q.PinUvAuthParam)
			var a ctap.MakeCredentialResponse
			require.NoError(t, ctap.Unmarshal(resp[1:], &a))
			add("makeCredential largeBlobKey", a.LargeBlobKey)
		case ctap.CmdGetAssertion:
			var q ctap.GetAssertionRequest
			require.NoError(t, ctap.Unmarshal(req[1:], &q))
			add("getAssertion pinUvAuthParam", q.PinUvAuthParam)
			add("saltEnc", q.Extensions.HMACSecret.SaltEnc)
			add("saltAuth", q.Extensions.HMACSecret.SaltAuth)
			var a ctap.GetAssertionResponse
			require.NoError(t, ctap.Unmarshal(resp[1:], &a))
			add("getAssertion largeBlobKey", a.LargeBlobKey)
			ad, err := ctap.ParseAuthData(a.AuthData)
			require.NoError(t, err)
			var ext map[string][]byte
			require.NoError(t, ctap.Unmarshal(ad.Extensions, &ext))
			add("hmac-secret output (encrypted)", ext["hmac-secret"])
		}
	}
	return out
}

// forms are the ways a secret could show up in a trace file.
func forms(b []byte) []string {
	return []string{hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)), string(b),
		base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
}

func TestRecorderRedactsEverySecret(t *testing.T) {
	t.Parallel()
	secretTrace, redacted, ps := record(t)
	h, srecs := readAll(t, secretTrace)
	require.True(t, h.Secrets)
	h, rrecs := readAll(t, redacted)
	require.False(t, h.Secrets)

	wire := wireSecrets(t, srecs)
	require.GreaterOrEqual(t, len(wire), 12, "the session must exercise every kind of secret: %v", keys(wire))
	for name, b := range wire {
		require.Contains(t, string(secretTrace), hex.EncodeToString(b), "secrets mode keeps %s", name)
		for _, f := range forms(b) {
			require.NotContains(t, string(redacted), f, "%s leaked into the redacted trace", name)
		}
	}

	plain := map[string][]byte{
		"PIN": []byte(ps.pin), "new PIN": []byte(ps.newPIN), "PIN hash": pinuv.PINHash(ps.pin),
		"new PIN hash": pinuv.PINHash(ps.newPIN), "salt1": ps.salt1, "salt2": ps.salt2,
		"hmac-secret output 1": ps.out1, "hmac-secret output 2": ps.out2, "largeBlobKey": ps.largeBlobKey,
	}
	for name, b := range plain {
		for _, f := range forms(b) {
			require.NotContains(t, string(redacted), f, "%s leaked into the redacted trace", name)
		}
	}
	for _, x := range exchanges(rrecs) {
		for _, m := range []*trace.Message{x.Request, x.Response} {
			if m == nil {
				continue
			}
			if _, red := m.Payload(); red {
				require.Contains(t, m.Diag, "<redacted", "a redacted message says so in its diagnostic notation")
			}
		}
	}
	// Structure stays comparable: the same exchanges, the same message lengths, secrets included.
	sx, rx := exchanges(srecs), exchanges(rrecs)
	require.Equal(t, len(sx), len(rx))
	for i := range sx {
		require.Equal(t, sx[i].Request.Command, rx[i].Request.Command)
		require.Equal(t, sx[i].Request.Len, rx[i].Request.Len)
		if sx[i].Response != nil {
			require.Equal(t, sx[i].Response.Status, rx[i].Response.Status)
			require.Equal(t, sx[i].Response.Len, rx[i].Response.Len)
		}
	}
	// Every redacted span in a message shows up as "xx" in the raw reports too: count them.
	require.Equal(t, redactedInMessages(rrecs), redactedInReports(rrecs))
	// The credential ID is not a secret and stays.
	require.Contains(t, string(redacted), hex.EncodeToString(ps.credentialPubKey))
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func redactedInMessages(recs []*trace.Record) int {
	n := 0
	for _, x := range exchanges(recs) {
		for _, m := range []*trace.Message{x.Request, x.Response} {
			if m != nil && m.HID != "KEEPALIVE" {
				for _, s := range m.Hex.Redacted {
					n += s.End - s.Start
				}
			}
		}
	}
	return n
}

func redactedInReports(recs []*trace.Record) int {
	n := 0
	for _, r := range recs {
		if r.Type == trace.TypeReport {
			for _, s := range r.Hex.Redacted {
				n += s.End - s.Start
			}
		}
	}
	return n
}

func TestRecorderDecodesTheSession(t *testing.T) {
	t.Parallel()
	_, data, _ := record(t)
	_, recs := readAll(t, data)
	var cmds []string
	for _, x := range exchanges(recs) {
		s := x.Request.HID
		if x.Request.Command != "" {
			s = x.Request.Command
		}
		cmds = append(cmds, s+" → "+x.Response.Status)
	}
	require.Equal(t, []string{
		"INIT → ", "authenticatorGetInfo → CTAP2_OK",
		"authenticatorClientPIN → CTAP2_OK", "authenticatorClientPIN → CTAP2_OK", // getKeyAgreement, setPIN
		"authenticatorGetInfo → CTAP2_OK", // the client asks again: the PIN changed the options
		"authenticatorClientPIN → CTAP2_OK", "authenticatorClientPIN → CTAP2_ERR_PIN_INVALID",
		"authenticatorClientPIN → CTAP2_OK", "authenticatorClientPIN → CTAP2_OK",
		"authenticatorMakeCredential → CTAP2_OK",
		"authenticatorClientPIN → CTAP2_OK", "authenticatorClientPIN → CTAP2_OK",
		"authenticatorClientPIN → CTAP2_OK", "authenticatorGetAssertion → CTAP2_OK",
		"authenticatorClientPIN → CTAP2_OK", "authenticatorClientPIN → CTAP2_OK",
	}, cmds)
	var ga *trace.Record
	for _, x := range exchanges(recs) {
		if x.Request.Command == "authenticatorGetAssertion" {
			ga = x
		}
	}
	require.NotNil(t, ga)
	require.Contains(t, ga.Request.Diag, `1 /rpId/: "login.microsoft.com"`)
	require.Contains(t, ga.Request.Diag, `2 /saltEnc/: <redacted 80 bytes>`) // protocol 2: IV ‖ 2 salts
	require.Contains(t, ga.Request.Diag, `6 /pinUvAuthParam/: <redacted 32 bytes>`)
	require.Contains(t, ga.Response.Diag, `7 /largeBlobKey/: <redacted 32 bytes>`)
	require.Contains(t, ga.Response.Summary, "flags UP|UV|ED")
	require.Contains(t, ga.Response.Diag, "xx", "the hmac-secret output inside authData is masked")
	require.Greater(t, ga.DurationUS, int64(0))
}
