package ctap

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// requireSameEncoding fails unless MarshalResponse writes the generic encoder's bytes for r, and
// reports whether the hand-written encoder covered r.
func requireSameEncoding(t testing.TB, r *GetAssertionResponse) bool {
	t.Helper()
	want, err := marshalResponseGeneric(r)
	require.NoError(t, err)
	got, err := MarshalResponse(r)
	require.NoError(t, err)
	require.Equal(t, want, got, "%#v", r)
	fast, ok := marshalGetAssertionResponse(r)
	if ok {
		require.Equal(t, want, fast, "%#v", r)
	}
	return ok
}

// sizedBytes is n bytes of a recognisable pattern.
func sizedBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestMarshalGetAssertionResponse(t *testing.T) {
	t.Parallel()
	cred := &CredentialDescriptor{ID: sizedBytes(64), Type: CredentialTypePublicKey}
	user := &UserEntity{ID: sizedBytes(16)}
	for _, tc := range []struct {
		name string
		r    *GetAssertionResponse
		fast bool
	}{
		{"assertion of the benchmark", &GetAssertionResponse{Credential: cred, AuthData: sizedBytes(37), Signature: sizedBytes(71)}, true},
		{"minimal", &GetAssertionResponse{}, true},
		{"empty byte strings", &GetAssertionResponse{AuthData: []byte{}, Signature: []byte{}}, true},
		{"discoverable", &GetAssertionResponse{Credential: cred, AuthData: sizedBytes(37), Signature: sizedBytes(72), User: user}, true},
		{"user details", &GetAssertionResponse{Credential: cred, AuthData: sizedBytes(37), Signature: sizedBytes(72),
			User: &UserEntity{ID: sizedBytes(32), Name: "alice@example.com", DisplayName: "Alice", Icon: "https://example.com/a.png"}}, true},
		{"user display name only", &GetAssertionResponse{User: &UserEntity{ID: sizedBytes(1), DisplayName: "A"}}, true},
		{"user with nil id", &GetAssertionResponse{User: &UserEntity{Name: "n"}}, true},
		{"credential with nil id and no type", &GetAssertionResponse{Credential: &CredentialDescriptor{}}, true},
		{"numberOfCredentials", &GetAssertionResponse{Credential: cred, NumberOfCredentials: 3, User: user}, true},
		{"numberOfCredentials large", &GetAssertionResponse{NumberOfCredentials: 70000}, true},
		{"numberOfCredentials negative", &GetAssertionResponse{NumberOfCredentials: -300}, true},
		{"numberOfCredentials extremes", &GetAssertionResponse{NumberOfCredentials: math.MinInt}, true},
		{"userSelected false", &GetAssertionResponse{UserSelected: Bool(false)}, true},
		{"userSelected true", &GetAssertionResponse{UserSelected: Bool(true)}, true},
		{"largeBlobKey", &GetAssertionResponse{Credential: cred, LargeBlobKey: sizedBytes(32)}, true},
		{"empty largeBlobKey", &GetAssertionResponse{LargeBlobKey: []byte{}}, true},
		{"long fields", &GetAssertionResponse{AuthData: sizedBytes(70000), Signature: sizedBytes(256),
			User: &UserEntity{ID: sizedBytes(255), Name: strings.Repeat("n", 65536)}}, true},
		{"invalid utf-8", &GetAssertionResponse{User: &UserEntity{ID: sizedBytes(1), Name: "\xff"}}, true},
		{"empty transports", &GetAssertionResponse{Credential: &CredentialDescriptor{ID: sizedBytes(1), Type: "t", Transports: cbor.RawMessage{}}}, true},
		{"transports", &GetAssertionResponse{Credential: &CredentialDescriptor{ID: sizedBytes(1), Type: "t", Transports: mustHex("8163757362")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.fast, requireSameEncoding(t, tc.r))
		})
	}
	// A nil response is the generic encoder's business (null), not a panic.
	b, err := MarshalResponse((*GetAssertionResponse)(nil))
	require.NoError(t, err)
	require.Equal(t, []byte{0x00, 0xf6}, b)
}

// randomGAResponse fills the fields of a response at random, at lengths around the head size
// boundaries, nil and empty included.
func randomGAResponse(rng *rand.Rand) *GetAssertionResponse {
	pick := func() bool { return rng.IntN(2) == 0 }
	randBytes := func() []byte {
		switch rng.IntN(6) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		return sizedBytes([]int{1, 23, 24, 37, 71, 255, 256, 1000}[rng.IntN(8)])
	}
	randText := func() string {
		return []string{"", "a", "public-key", "Alice", "\xff\xfe", strings.Repeat("é", 12), strings.Repeat("x", 256)}[rng.IntN(7)]
	}
	r := &GetAssertionResponse{AuthData: randBytes(), Signature: randBytes()}
	if pick() {
		r.Credential = &CredentialDescriptor{ID: randBytes(), Type: randText()}
		if rng.IntN(8) == 0 {
			r.Credential.Transports = cbor.RawMessage(mustHex("826375736263" + "6e6663"))
		}
	}
	if pick() {
		r.User = &UserEntity{ID: randBytes(), Name: randText(), DisplayName: randText(), Icon: randText()}
	}
	if pick() {
		r.NumberOfCredentials = []int{0, 1, 2, 23, 24, 255, 256, 65536, -1, -25, math.MaxInt, math.MinInt}[rng.IntN(12)]
	}
	if pick() {
		r.UserSelected = Bool(pick())
	}
	r.LargeBlobKey = randBytes()
	return r
}

func TestMarshalGetAssertionResponseRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 7))
	fast := 0
	const n = 3000
	for range n {
		if requireSameEncoding(t, randomGAResponse(rng)) {
			fast++
		}
	}
	require.Greater(t, fast, n*3/4, "the hand-written encoder covered too few responses")
}

// FuzzMarshalGetAssertionResponse: for any field values, MarshalResponse writes exactly the bytes
// of the generic CTAP2 canonical encoder. present's bits choose which optional fields are set
// (and whether byte strings are nil).
func FuzzMarshalGetAssertionResponse(f *testing.F) {
	f.Add(uint16(0x0003), sizedBytes(64), CredentialTypePublicKey, sizedBytes(37), sizedBytes(71), []byte(nil), "", "", "", 0, false, []byte(nil))
	f.Add(uint16(0x00ff), sizedBytes(16), CredentialTypePublicKey, sizedBytes(37), sizedBytes(72), sizedBytes(32), "alice", "Alice", "", 2, true, sizedBytes(32))
	f.Add(uint16(0xffff), []byte{}, "", []byte{}, []byte{}, []byte{}, "\xff", strings.Repeat("x", 300), "i", -1, false, []byte{})
	f.Fuzz(func(t *testing.T, present uint16, credID []byte, credType string, authData, sig, userID []byte,
		name, displayName, icon string, n int, selected bool, largeBlobKey []byte) {
		orNil := func(bit uint, b []byte) []byte {
			if present&(1<<bit) == 0 {
				return nil
			}
			if b == nil {
				return []byte{}
			}
			return b
		}
		r := &GetAssertionResponse{AuthData: orNil(2, authData), Signature: orNil(3, sig), LargeBlobKey: orNil(4, largeBlobKey)}
		if present&1 != 0 {
			r.Credential = &CredentialDescriptor{ID: orNil(5, credID), Type: credType}
			if present&(1<<9) != 0 {
				r.Credential.Transports = cbor.RawMessage(mustHex("8163757362"))
			}
		}
		if present&2 != 0 {
			r.User = &UserEntity{ID: orNil(6, userID), Name: name, DisplayName: displayName, Icon: icon}
		}
		if present&(1<<7) != 0 {
			r.NumberOfCredentials = n
		}
		if present&(1<<8) != 0 {
			r.UserSelected = Bool(selected)
		}
		requireSameEncoding(t, r)
	})
}

// TestGetAssertionFastAllocs: the request path allocates less than with the generic codec. Not
// parallel: allocation counts are process-wide.
func TestGetAssertionFastAllocs(t *testing.T) {
	for _, req := range [][]byte{mustMarshal(t, gaMap(false, false, false)), mustMarshal(t, gaMap(true, true, true))} {
		fast := testing.AllocsPerRun(200, func() { _, _ = DecodeGetAssertion(req) })
		generic := testing.AllocsPerRun(200, func() { _, _ = decodeGetAssertionGeneric(req) })
		// The request with its allowList, one buffer for its byte strings, and the rpId.
		require.LessOrEqual(t, fast, 3.0, "decode allocations (generic: %v)", generic)
		require.Less(t, fast, generic)
	}
	resp := &GetAssertionResponse{Credential: &CredentialDescriptor{ID: sizedBytes(64), Type: CredentialTypePublicKey},
		AuthData: sizedBytes(37), Signature: sizedBytes(71), User: &UserEntity{ID: sizedBytes(16), Name: "alice"}}
	fast := testing.AllocsPerRun(200, func() { _, _ = MarshalResponse(resp) })
	generic := testing.AllocsPerRun(200, func() { _, _ = marshalResponseGeneric(resp) })
	require.Equal(t, 1.0, fast, "encode allocations (generic: %v)", generic)
	require.Less(t, fast, generic)
}

func BenchmarkMarshalGetAssertionResponse(b *testing.B) {
	resp := &GetAssertionResponse{Credential: &CredentialDescriptor{ID: sizedBytes(64), Type: CredentialTypePublicKey},
		AuthData: sizedBytes(37), Signature: sizedBytes(71)}
	b.Run("generic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalResponseGeneric(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := MarshalResponse(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestGetAssertionFastCoversFields fails when a field is added to a type the hand-written
// getAssertion paths read or write: the encoder would leave it out, and the decoder should learn
// it (or knowingly leave it to the generic one). Update getassertion_fast.go and
// getassertion_encode.go, then the lists here.
func TestGetAssertionFastCoversFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    any
		tags []string
	}{
		{GetAssertionRequest{}, []string{"1,keyasint,omitempty", "2,keyasint,omitempty", "3,keyasint,omitempty",
			"4,keyasint,omitempty", "5,keyasint,omitempty", "6,keyasint,omitempty", "7,keyasint,omitempty"}},
		{GetAssertionResponse{}, []string{"1,keyasint,omitempty", "2,keyasint", "3,keyasint", "4,keyasint,omitempty",
			"5,keyasint,omitempty", "6,keyasint,omitempty", "7,keyasint,omitempty"}},
		{CredentialDescriptor{}, []string{"id", "type", "transports,omitempty"}},
		{UserEntity{}, []string{"id", "name,omitempty", "displayName,omitempty", "icon,omitempty"}},
		{Options{}, []string{"rk,omitempty", "up,omitempty", "uv,omitempty"}},
	} {
		typ := reflect.TypeOf(tc.v)
		var tags []string
		for i := range typ.NumField() {
			tags = append(tags, typ.Field(i).Tag.Get("cbor"))
		}
		require.Equal(t, tc.tags, tags, "%v changed: the hand-written getAssertion codec must follow", typ)
	}
}
