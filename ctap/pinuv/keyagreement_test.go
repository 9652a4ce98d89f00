package pinuv

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestRoundTripPlatformAuthenticator(t *testing.T) {
	t.Parallel()
	for _, p := range []Protocol{V1{}, V2{}} {
		for range 8 {
			ka, err := NewKeyAgreement(nil)
			require.NoError(t, err)
			// The platform sees the authenticator key only as CBOR.
			wire, err := ka.PublicCOSE().Marshal()
			require.NoError(t, err)
			authKey, err := cose.Unmarshal(wire)
			require.NoError(t, err)
			require.Equal(t, cose.AlgECDHESHKDF256, authKey.Alg)

			platKey, platSecret, err := Encapsulate(p, nil, authKey)
			require.NoError(t, err)
			wire, err = platKey.Marshal()
			require.NoError(t, err)
			platKeyOnKey, err := cose.Unmarshal(wire)
			require.NoError(t, err)
			keySecret, err := ka.SharedSecret(p, platKeyOnKey)
			require.NoError(t, err)
			require.Equal(t, platSecret, keySecret)
			require.Len(t, keySecret, map[int]int{1: V1SecretSize, 2: V2SecretSize}[p.Version()])

			// setPIN as both sides build it.
			padded, err := PadPIN("123456")
			require.NoError(t, err)
			newPinEnc, err := p.Encrypt(platSecret, padded)
			require.NoError(t, err)
			param := p.Authenticate(platSecret, newPinEnc)
			require.True(t, p.Verify(keySecret, newPinEnc, param))
			dec, err := p.Decrypt(keySecret, newPinEnc)
			require.NoError(t, err)
			pin, err := UnpadPIN(dec)
			require.NoError(t, err)
			require.Equal(t, []byte("123456"), pin)

			// After regeneration the old platform secret no longer matches.
			require.NoError(t, ka.Regenerate(nil))
			fresh, err := ka.SharedSecret(p, platKeyOnKey)
			require.NoError(t, err)
			require.NotEqual(t, platSecret, fresh)
		}
	}
}

func TestSharedSecretRejectsBadPeers(t *testing.T) {
	t.Parallel()
	ka, err := NewKeyAgreement(nil)
	require.NoError(t, err)
	good := ka.PublicCOSE()
	es256 := good
	es256.Alg = cose.AlgES256
	offCurve := good
	offCurve.Y[0] ^= 0xff
	ed := cose.Key{Type: cose.KeyTypeOKP, Alg: cose.AlgEdDSA, Curve: cose.CurveEd25519}
	for name, peer := range map[string]cose.Key{"ES256 alg": es256, "off curve": offCurve, "Ed25519": ed, "zero": {}} {
		_, err := ka.SharedSecret(V2{}, peer)
		require.Error(t, err, name)
		var s ctap.Status
		require.True(t, errors.As(err, &s), name)
		require.Equal(t, ctap.ErrInvalidParameter, s, name)
		_, _, err = Encapsulate(V1{}, nil, peer)
		require.Error(t, err, name)
	}
	_, err = ka.SharedSecret(nil, good)
	require.Error(t, err)
}

func TestKeyGenerationUsesReader(t *testing.T) {
	t.Parallel()
	// The group order n begins ffffffff00000000ffff…; an all-ones scalar is ≥ n and
	// must be skipped in favour of the next candidate.
	tooBig := bytes.Repeat([]byte{0xff}, 32)
	scalar := bytes.Repeat([]byte{0x11}, 32)
	ka, err := NewKeyAgreement(bytes.NewReader(append(tooBig, scalar...)))
	require.NoError(t, err)
	priv, err := ecdh.P256().NewPrivateKey(scalar)
	require.NoError(t, err)
	want, err := cose.FromECDH(priv.PublicKey())
	require.NoError(t, err)
	require.Equal(t, want, ka.PublicCOSE())

	_, err = NewKeyAgreement(bytes.NewReader(make([]byte, 10)))
	require.Error(t, err)
	_, err = NewKeyAgreement(bytes.NewReader(make([]byte, 64*32))) // zero scalars only
	require.Error(t, err)
	require.Panics(t, func() { NewToken(bytes.NewReader(nil)) })
	require.Equal(t, scalar, NewToken(bytes.NewReader(scalar)))
}

func TestPINHelpers(t *testing.T) {
	t.Parallel()
	// SHA-256("1234") = 03ac6742 16f3e15c 761ee1a5 e255f067 9536…
	require.Equal(t, mustHex(t, "03ac674216f3e15c761ee1a5e255f067"), PINHash("1234"))

	padded, err := PadPIN("1234")
	require.NoError(t, err)
	require.Len(t, padded, PaddedPINSize)
	require.Equal(t, []byte("1234"), padded[:4])
	require.Equal(t, make([]byte, 60), padded[4:])

	max := string(bytes.Repeat([]byte("a"), 63))
	padded, err = PadPIN(max)
	require.NoError(t, err)
	require.Equal(t, byte(0), padded[63])
	_, err = PadPIN(max + "a")
	require.ErrorIs(t, err, ErrPINTooLong)
	_, err = PadPIN("12\x0034")
	require.Error(t, err)
	// Multi-byte code points count as bytes for the 63-byte limit.
	emoji := "🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑" // 16 × 4 bytes
	require.Equal(t, 16, utf8.RuneCountInString(emoji))
	_, err = PadPIN(emoji)
	require.ErrorIs(t, err, ErrPINTooLong)

	pin, err := UnpadPIN(append([]byte("9876"), make([]byte, 60)...))
	require.NoError(t, err)
	require.Equal(t, []byte("9876"), pin)
	full := bytes.Repeat([]byte("b"), 64)
	pin, err = UnpadPIN(full)
	require.NoError(t, err)
	require.Len(t, pin, 64, "an unpadded 64-byte PIN is left for the policy check to reject")
	_, err = UnpadPIN(make([]byte, 63))
	require.ErrorIs(t, err, ctap.ErrInvalidParameter)
	_, err = UnpadPIN(make([]byte, 80))
	require.ErrorIs(t, err, ctap.ErrInvalidParameter)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// hexBytes marshals as a hex string so the golden file stays readable.
type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type protocolVector struct {
	SharedSecret   hexBytes `json:"sharedSecret"`
	IV             hexBytes `json:"iv,omitempty"`
	PINHashEnc     hexBytes `json:"pinHashEnc"`
	NewPINEnc      hexBytes `json:"newPinEnc"`
	SetPINParam    hexBytes `json:"setPinParam"`
	TokenParamOver hexBytes `json:"tokenParamOverClientDataHash"`
}

type goldenVectors struct {
	Note                string         `json:"note"`
	AuthenticatorScalar hexBytes       `json:"authenticatorScalar"`
	PlatformScalar      hexBytes       `json:"platformScalar"`
	AuthenticatorKey    hexBytes       `json:"authenticatorKeyCOSE"`
	PlatformKey         hexBytes       `json:"platformKeyCOSE"`
	Z                   hexBytes       `json:"z"`
	PIN                 string         `json:"pin"`
	NewPIN              string         `json:"newPin"`
	Token               hexBytes       `json:"token"`
	ClientDataHash      hexBytes       `json:"clientDataHash"`
	V1                  protocolVector `json:"v1"`
	V2                  protocolVector `json:"v2"`
}

func computeVectors(t *testing.T, in goldenVectors) goldenVectors {
	t.Helper()
	out := in
	ka, err := NewKeyAgreement(bytes.NewReader(in.AuthenticatorScalar))
	require.NoError(t, err)
	out.AuthenticatorKey, err = ka.PublicCOSE().Marshal()
	require.NoError(t, err)
	for _, p := range []Protocol{V1{}, V2{Rand: bytes.NewReader(append(bytes.Clone(in.V2.IV), in.V2.IV...))}} {
		platKey, ss, err := Encapsulate(p, bytes.NewReader(in.PlatformScalar), ka.PublicCOSE())
		require.NoError(t, err)
		out.PlatformKey, err = platKey.Marshal()
		require.NoError(t, err)
		keySide, err := ka.SharedSecret(p, platKey)
		require.NoError(t, err)
		require.Equal(t, ss, keySide)
		v := protocolVector{SharedSecret: ss}
		v.PINHashEnc, err = p.Encrypt(ss, PINHash(in.PIN))
		require.NoError(t, err)
		padded, err := PadPIN(in.NewPIN)
		require.NoError(t, err)
		v.NewPINEnc, err = p.Encrypt(ss, padded)
		require.NoError(t, err)
		v.SetPINParam = p.Authenticate(ss, v.NewPINEnc)
		v.TokenParamOver = p.Authenticate(in.Token, in.ClientDataHash)
		if p.Version() == 2 {
			v.IV = in.V2.IV
			out.V2 = v
		} else {
			out.V1 = v
		}
	}
	// Z from crypto/ecdh directly, independent of the package's plumbing.
	a, err := ecdh.P256().NewPrivateKey(in.AuthenticatorScalar)
	require.NoError(t, err)
	b, err := ecdh.P256().NewPrivateKey(in.PlatformScalar)
	require.NoError(t, err)
	out.Z, err = a.ECDH(b.PublicKey())
	require.NoError(t, err)
	return out
}

func TestGoldenVectors(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "vectors.json")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var want goldenVectors
	require.NoError(t, json.Unmarshal(raw, &want))
	got := computeVectors(t, want)
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
		return
	}
	require.Equal(t, want, got)
	// Spot checks that tie the pinned values to the spec's definitions.
	require.Equal(t, refHKDF(want.Z, make([]byte, 32), "CTAP2 AES key", 32), []byte(want.V2.SharedSecret[32:]))
	require.Equal(t, refCBCEncrypt(want.V1.SharedSecret, make([]byte, 16), PINHash(want.PIN)), []byte(want.V1.PINHashEnc))
}

func FuzzUnpadPIN(f *testing.F) {
	f.Add(append([]byte("1234"), make([]byte, 60)...))
	f.Add(make([]byte, 64))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, padded []byte) {
		pin, err := UnpadPIN(padded)
		if err != nil {
			if len(padded) == PaddedPINSize {
				t.Fatalf("64-byte input rejected: %v", err)
			}
			return
		}
		if len(pin) > 0 && pin[len(pin)-1] == 0 {
			t.Fatal("trailing zero left in PIN")
		}
		if !bytes.HasPrefix(padded, pin) || len(bytes.TrimRight(padded[len(pin):], "\x00")) != 0 {
			t.Fatal("PIN is not the padded input minus trailing zeros")
		}
		if len(pin) <= MaxPINBytes && bytes.IndexByte(pin, 0) < 0 {
			again, err := PadPIN(string(pin))
			if err != nil || !bytes.Equal(again, padded) {
				t.Fatalf("PadPIN does not rebuild the input: %v", err)
			}
		}
	})
}
