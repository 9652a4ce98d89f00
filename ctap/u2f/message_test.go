package u2f

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type specExamples struct {
	Register struct {
		Challenge, Application, Response, KeyHandle, APDU hexBytes
	}
	Authenticate struct {
		Challenge, Application, PublicKey, Response hexBytes
	}
	VersionAPDULibfido2Style hexBytes `json:"versionApduLibfido2Style"`
}

func loadExamples(t *testing.T) specExamples {
	t.Helper()
	raw, err := os.ReadFile("testdata/spec_examples.json")
	require.NoError(t, err)
	var ex specExamples
	require.NoError(t, json.Unmarshal(raw, &ex))
	return ex
}

func param(b []byte) (p [ParamSize]byte) {
	copy(p[:], b)
	return p
}

func verifyP256(t *testing.T, pub *ecdsa.PublicKey, msg, sig []byte) bool {
	t.Helper()
	d := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(pub, d[:], sig)
}

func TestSpecRegisterExample(t *testing.T) {
	t.Parallel()
	ex := loadExamples(t).Register
	r, err := ParseRegisterResponse(ex.Response)
	require.NoError(t, err)
	require.Equal(t, []byte(ex.KeyHandle), r.KeyHandle)
	require.Equal(t, byte(0x04), r.PublicKey[0])
	require.Len(t, r.Certificate, 0x13c+4)
	require.Equal(t, byte(0x30), r.Signature[0])

	again, err := r.Marshal()
	require.NoError(t, err)
	require.Equal(t, []byte(ex.Response), again)

	cert, err := x509.ParseCertificate(r.Certificate)
	require.NoError(t, err)
	attKey, ok := cert.PublicKey.(*ecdsa.PublicKey)
	require.True(t, ok)
	app, chal := param(ex.Application), param(ex.Challenge)
	signed := RegisterSignedData(app, chal, r.KeyHandle, r.PublicKey)
	require.Len(t, signed, 1+32+32+len(r.KeyHandle)+65)
	require.True(t, verifyP256(t, attKey, signed, r.Signature), "spec example signature must verify over RegisterSignedData")
	require.False(t, verifyP256(t, attKey, RegisterSignedData(chal, app, r.KeyHandle, r.PublicKey), r.Signature), "order of app and challenge matters")

	// The host builds the same APDU as the reference client (P1 0, extended, Le 0000).
	apdu, err := RegisterRequest{Challenge: chal, Application: app}.Command().Encode()
	require.NoError(t, err)
	require.Equal(t, []byte(ex.APDU), apdu)
	c, err := ParseCommand(apdu)
	require.NoError(t, err)
	req, err := ParseRegisterRequest(c)
	require.NoError(t, err)
	require.Equal(t, RegisterRequest{Challenge: chal, Application: app}, req)
}

func TestSpecAuthenticateExample(t *testing.T) {
	t.Parallel()
	ex := loadExamples(t).Authenticate
	r, err := ParseAuthenticateResponse(ex.Response)
	require.NoError(t, err)
	require.Equal(t, UserPresent, r.UserPresence)
	require.Equal(t, uint32(1), r.Counter)
	require.Equal(t, []byte(ex.Response), r.Marshal())

	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), ex.PublicKey)
	require.NoError(t, err)
	app, chal := param(ex.Application), param(ex.Challenge)
	signed := AuthenticateSignedData(app, r.UserPresence, r.Counter, chal)
	require.Len(t, signed, 69)
	require.True(t, verifyP256(t, pub, signed, r.Signature))
	require.False(t, verifyP256(t, pub, AuthenticateSignedData(app, r.UserPresence, 2, chal), r.Signature))

	// Host-side APDU, as the reference client encodes it.
	kh := bytes.Repeat([]byte{3}, 64)
	c, err := AuthenticateRequest{Control: ControlEnforceUserPresence, Challenge: chal, Application: app, KeyHandle: kh}.Command()
	require.NoError(t, err)
	apdu, err := c.Encode()
	require.NoError(t, err)
	require.Equal(t, cat([]byte{0, 2, 3, 0, 0, 0, 0x81}, chal[:], app[:], []byte{0x40}, kh, []byte{0, 0}), apdu)
}

func TestVersionRequest(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{
		loadExamples(t).VersionAPDULibfido2Style,
		{0, 3, 0, 0},
		{0, 3, 0, 0, 0},
		{0, 3, 0, 0, 0, 0, 0},
	} {
		c, err := ParseCommand(in)
		require.NoError(t, err, "%x", in)
		require.NoError(t, ParseVersionRequest(c))
	}
	c, err := ParseCommand([]byte{0, 3, 0, 0, 1, 0xaa})
	require.NoError(t, err)
	err = ParseVersionRequest(c)
	require.ErrorIs(t, err, SWWrongLength)
	b, err := VersionCommand().Encode()
	require.NoError(t, err)
	require.Equal(t, []byte{0, 3, 0, 0, 0, 0, 0}, b)
	require.Equal(t, append([]byte("U2F_V2"), 0x90, 0x00), Response([]byte(Version), SWNoError))
}

func TestRequestValidation(t *testing.T) {
	t.Parallel()
	body := func(n int, khLen byte) []byte {
		d := seq(n)
		if n > 64 {
			d[64] = khLen
		}
		return d
	}
	tests := []struct {
		name string
		c    Command
		want StatusWord
	}{
		{"register 63 bytes", Command{INS: InsRegister, Data: seq(63)}, SWWrongLength},
		{"register 65 bytes", Command{INS: InsRegister, Data: seq(65)}, SWWrongLength},
		{"register no data", Command{INS: InsRegister}, SWWrongLength},
		{"authenticate 64 bytes", Command{INS: InsAuthenticate, P1: 3, Data: seq(64)}, SWWrongLength},
		{"authenticate kh longer than L", Command{INS: InsAuthenticate, P1: 3, Data: body(65+9, 8)}, SWWrongLength},
		{"authenticate kh shorter than L", Command{INS: InsAuthenticate, P1: 3, Data: body(65+7, 8)}, SWWrongLength},
		{"authenticate control 0x00", Command{INS: InsAuthenticate, P1: 0, Data: body(65+8, 8)}, SWWrongData},
		{"authenticate control 0x04", Command{INS: InsAuthenticate, P1: 4, Data: body(65+8, 8)}, SWWrongData},
		{"version with data", Command{INS: InsVersion, Data: []byte{1}}, SWWrongLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			switch tc.c.INS {
			case InsRegister:
				_, err = ParseRegisterRequest(tc.c)
			case InsAuthenticate:
				_, err = ParseAuthenticateRequest(tc.c)
			default:
				err = ParseVersionRequest(tc.c)
			}
			var sw StatusWord
			require.True(t, errors.As(err, &sw), "%v", err)
			require.Equal(t, tc.want, sw)
		})
	}
	// Wrong INS for the typed parser.
	_, err := ParseRegisterRequest(Command{INS: InsAuthenticate, Data: seq(64)})
	require.ErrorIs(t, err, SWInsNotSupported)

	for _, ctl := range []Control{ControlEnforceUserPresence, ControlCheckOnly, ControlDontEnforceUserPresence} {
		r, err := ParseAuthenticateRequest(Command{INS: InsAuthenticate, P1: byte(ctl), Data: body(65+8, 8)})
		require.NoError(t, err)
		require.Equal(t, ctl, r.Control)
		require.Equal(t, seq(73)[65:], r.KeyHandle)
		require.Equal(t, seq(32), r.Challenge[:])
		require.Equal(t, seq(64)[32:], r.Application[:])
	}
	_, err = AuthenticateRequest{KeyHandle: seq(256)}.Command()
	require.ErrorIs(t, err, SWWrongLength)
}

func testRegisterResponse(t *testing.T) (RegisterResponse, *ecdsa.PrivateKey) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := priv.PublicKey.Bytes()
	require.NoError(t, err)
	var r RegisterResponse
	copy(r.PublicKey[:], pub)
	r.KeyHandle = seq(64)
	r.Certificate = loadCert(t)
	r.Signature = []byte{0x30, 0x02, 0x01, 0x00}
	return r, priv
}

func loadCert(t *testing.T) []byte {
	t.Helper()
	r, err := ParseRegisterResponse(loadExamples(t).Register.Response)
	require.NoError(t, err)
	return r.Certificate
}

func TestRegisterResponseErrors(t *testing.T) {
	t.Parallel()
	r, _ := testRegisterResponse(t)
	good, err := r.Marshal()
	require.NoError(t, err)
	back, err := ParseRegisterResponse(good)
	require.NoError(t, err)
	require.Equal(t, r, back)

	bad := map[string][]byte{
		"empty":                 nil,
		"reserved byte":         append([]byte{0x06}, good[1:]...),
		"compressed key":        append([]byte{0x05, 0x02}, good[2:]...),
		"kh truncated":          good[:1+65+1+10],
		"no certificate":        good[:1+65+1+64],
		"cert truncated":        good[:1+65+1+64+100],
		"no signature":          good[:len(good)-len(r.Signature)],
		"not a sequence":        cat(good[:1+65+1+64], []byte{0x31, 0x00, 0x30, 0x00}),
		"cert length 0x80 form": cat(good[:1+65+1+64], []byte{0x30, 0x80, 0x00}),
	}
	for name, in := range bad {
		_, err := ParseRegisterResponse(in)
		require.ErrorIs(t, err, ErrMalformedResponse, name)
	}

	for name, mut := range map[string]func(*RegisterResponse){
		"kh too long":      func(r *RegisterResponse) { r.KeyHandle = seq(256) },
		"trailing cert":    func(r *RegisterResponse) { r.Certificate = append(bytes.Clone(r.Certificate), 0) },
		"no cert":          func(r *RegisterResponse) { r.Certificate = nil },
		"no signature":     func(r *RegisterResponse) { r.Signature = nil },
		"not uncompressed": func(r *RegisterResponse) { r.PublicKey[0] = 0x02 },
	} {
		m := r
		m.KeyHandle, m.Certificate, m.Signature = bytes.Clone(r.KeyHandle), bytes.Clone(r.Certificate), bytes.Clone(r.Signature)
		mut(&m)
		_, err := m.Marshal()
		require.Error(t, err, name)
	}
}

func TestAuthenticateResponseAndStatus(t *testing.T) {
	t.Parallel()
	r := AuthenticateResponse{UserPresence: UserPresent, Counter: 0x01020304, Signature: []byte{0x30, 0x01}}
	b := r.Marshal()
	require.Equal(t, []byte{1, 1, 2, 3, 4, 0x30, 0x01}, b)
	back, err := ParseAuthenticateResponse(b)
	require.NoError(t, err)
	require.Equal(t, r, back)
	_, err = ParseAuthenticateResponse(b[:5])
	require.ErrorIs(t, err, ErrMalformedResponse)

	data, sw, err := ParseResponse(Response([]byte("abc"), SWConditionsNotSatisfied))
	require.NoError(t, err)
	require.Equal(t, []byte("abc"), data)
	require.Equal(t, SWConditionsNotSatisfied, sw)
	require.Equal(t, []byte{0x6a, 0x80}, Response(nil, SWWrongData))
	_, _, err = ParseResponse([]byte{0x90})
	require.ErrorIs(t, err, ErrMalformedResponse)
	require.Equal(t, "SW_WRONG_LENGTH", SWWrongLength.String())
	require.Equal(t, "SW_0x6F00", StatusWord(0x6f00).String())
}

func FuzzParseRegisterResponse(f *testing.F) {
	raw, err := os.ReadFile("testdata/spec_examples.json")
	if err != nil {
		f.Fatal(err)
	}
	var ex specExamples
	if err := json.Unmarshal(raw, &ex); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(ex.Register.Response))
	f.Add([]byte(ex.Register.Response[:200]))
	f.Add(cat([]byte{5, 4}, make([]byte, 64), []byte{0, 0x30, 0x81, 0x01, 0x00, 0x01}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRegisterResponse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatalf("parsed response does not marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("marshal %x differs from input %x", out, b)
		}
	})
}

func FuzzParseAuthenticateResponse(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 0x30})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseAuthenticateResponse(b)
		if err != nil {
			if len(b) >= 6 {
				t.Fatalf("well-formed response rejected: %v", err)
			}
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("marshal differs from input")
		}
		data, sw, err := ParseResponse(Response(b, SWNoError))
		if err != nil || sw != SWNoError || !bytes.Equal(data, b) {
			t.Fatalf("status word framing does not round-trip: %v", err)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte{0x90, 0x00})
	f.Add([]byte("U2F_V2\x90\x00"))
	f.Add([]byte{0x6a})
	f.Fuzz(func(t *testing.T, b []byte) {
		data, sw, err := ParseResponse(b)
		if err != nil {
			if len(b) >= 2 {
				t.Fatalf("response with a status word rejected: %v", err)
			}
			return
		}
		if !bytes.Equal(Response(data, sw), b) {
			t.Fatal("response does not rebuild")
		}
	})
}
