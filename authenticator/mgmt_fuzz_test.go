package authenticator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// The fuzz targets below feed arbitrary CBOR to the management commands of a key that has a PIN
// and a live pinUvAuthToken the fuzzer does not know. Whatever the input: no panic, a response
// that is a status byte (plus a decodable map on success), and a store that has not changed,
// since no request can carry a valid pinUvAuthParam.

// mgmtFuzzKey is a key with a PIN, three resident credentials, one fingerprint, and stored large
// blobs.
func mgmtFuzzKey(f *testing.F) *testKey {
	k := newTestKey(f, "default")
	k.mgmtSeed("a.example", "u1", 0)
	k.mgmtSeed("a.example", "u2", 2)
	k.mgmtSeed("b.example", "u1", 3)
	require.NoError(f, k.Store().PutFingerprint(store.Fingerprint{TemplateID: []byte("0123456789abcdef"), FriendlyName: "index"}))
	require.NoError(f, k.Store().PutLargeBlobs(lbArray(200, 0x5a)))
	k.mgmtToken(ctap.PermCredentialManagement, "")
	return k
}

// mgmtFuzzState is everything the management commands could change in the store.
func mgmtFuzzState(t testing.TB, k *testKey) string {
	var b bytes.Buffer
	for _, c := range mgmtSnapshot(t, k) {
		b.WriteString(c + "\n")
	}
	fps, err := k.Store().Fingerprints()
	require.NoError(t, err)
	for _, fp := range fps {
		b.WriteString(string(fp.TemplateID) + "=" + fp.FriendlyName + "\n")
	}
	lb, err := k.Store().LargeBlobs()
	require.NoError(t, err)
	b.Write(lb)
	return b.String()
}

// mgmtFuzzCall sends one request with a fresh (unknown to the input) token in use, so every
// input starts from the same volatile state and a crash reproduces from its input alone.
func mgmtFuzzCall(t *testing.T, k *testKey, cmd ctap.Command, data []byte, perms uint64) (ctap.Status, []byte) {
	require.NoError(t, k.PowerCycle())
	k.mu.Lock()
	_, err := k.issueToken(perms, "", true, false)
	k.mu.Unlock()
	require.NoError(t, err)
	resp := k.HandleCBOR(context.Background(), append([]byte{byte(cmd)}, data...), nil)
	require.NotEmpty(t, resp)
	return ctap.Status(resp[0]), resp[1:]
}

func mgmtFuzzSeeds(f *testing.F, reqs ...any) {
	for _, r := range reqs {
		b, err := ctap.Marshal(r)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01})
	f.Add([]byte{0xff, 0x00})
}

func FuzzCredMgmt(f *testing.F) {
	k := mgmtFuzzKey(f)
	params := func(p *ctap.CredentialManagementParams) []byte { b, _ := ctap.Marshal(p); return b }
	tag := bytes.Repeat([]byte{7}, 32)
	cred := &ctap.CredentialDescriptor{ID: []byte("cred-a.example-u1"), Type: ctap.CredentialTypePublicKey}
	mgmtFuzzSeeds(f,
		&ctap.CredentialManagementRequest{SubCommand: ctap.Uint(1), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: tag},
		&ctap.CredentialManagementRequest{SubCommand: ctap.Uint(2), PinUvAuthProtocol: ctap.Uint(1), PinUvAuthParam: tag[:16]},
		&ctap.CredentialManagementRequest{SubCommand: ctap.Uint(3)},
		&ctap.CredentialManagementRequest{SubCommand: ctap.Uint(4), SubCommandParams: params(&ctap.CredentialManagementParams{RPIDHash: rpHash("a.example")}), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: tag},
		&ctap.CredentialManagementRequest{SubCommand: ctap.Uint(5)},
		&ctap.CredentialManagementRequest{SubCommand: ctap.Uint(6), SubCommandParams: params(&ctap.CredentialManagementParams{CredentialID: cred}), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: tag},
		&ctap.CredentialManagementRequest{SubCommand: ctap.Uint(7), SubCommandParams: params(&ctap.CredentialManagementParams{CredentialID: cred, User: &ctap.UserEntity{ID: []byte("u1"), Name: "x"}}), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: tag},
	)
	before := mgmtFuzzState(f, k)
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd := ctap.CmdCredentialManagement
		if len(data)%2 == 1 {
			cmd = ctap.CmdCredentialManagementPre
		}
		st, body := mgmtFuzzCall(t, k, cmd, data, ctap.PermCredentialManagement)
		if st == ctap.StatusOK {
			// Only the unauthenticated getNext subcommands can succeed, and only after a Begin,
			// which a fresh power cycle has forgotten.
			t.Fatalf("request succeeded without authentication: %x", data)
		}
		require.Empty(t, body)
		require.Equal(t, before, mgmtFuzzState(t, k), "store changed by %x", data)
	})
}

func FuzzBioEnroll(f *testing.F) {
	k := mgmtFuzzKey(f)
	params := func(p *ctap.BioEnrollmentParams) []byte { b, _ := ctap.Marshal(p); return b }
	tag := bytes.Repeat([]byte{7}, 32)
	tid := []byte("0123456789abcdef")
	mgmtFuzzSeeds(f,
		&ctap.BioEnrollmentRequest{GetModality: ctap.Bool(true)},
		&ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(7)},
		&ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(3)},
		&ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(1), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: tag},
		&ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(2), SubCommandParams: params(&ctap.BioEnrollmentParams{TemplateID: tid, TimeoutMilliseconds: ctap.Uint(10)}), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: tag},
		&ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(5), SubCommandParams: params(&ctap.BioEnrollmentParams{TemplateID: tid, TemplateFriendlyName: strPtr("x")}), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: tag},
		&ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(6), SubCommandParams: params(&ctap.BioEnrollmentParams{TemplateID: tid}), PinUvAuthProtocol: ctap.Uint(1), PinUvAuthParam: tag[:16]},
	)
	before := mgmtFuzzState(f, k)
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd := ctap.CmdBioEnrollment
		if len(data)%2 == 1 {
			cmd = ctap.CmdBioEnrollmentPre
		}
		st, body := mgmtFuzzCall(t, k, cmd, data, ctap.PermBioEnrollment)
		if st == ctap.StatusOK && len(body) > 0 {
			var resp ctap.BioEnrollmentResponse
			require.NoError(t, ctap.Unmarshal(body, &resp))
			require.Nil(t, resp.TemplateID, "an enrollment began without authentication")
			require.Nil(t, resp.TemplateInfos, "enrollments listed without authentication")
		}
		require.Equal(t, before, mgmtFuzzState(t, k), "store changed by %x", data)
	})
}

// FuzzLargeBlobs sends two requests per input (so that fragment sequences get explored) to a
// key protected by a PIN, which must never change its array, and to one without a PIN, whose
// array must always stay a well-formed, hash-checked serialized array within its limit.
func FuzzLargeBlobs(f *testing.F) {
	protected := mgmtFuzzKey(f)
	open := newTestKey(f, "default")
	blob := lbArray(100, 0x33)
	seed := func(a, b *ctap.LargeBlobsRequest) {
		ab, err := ctap.Marshal(a)
		require.NoError(f, err)
		bb, err := ctap.Marshal(b)
		require.NoError(f, err)
		f.Add(ab, bb)
	}
	seed(&ctap.LargeBlobsRequest{Get: ctap.Uint(50), Offset: ctap.Uint(0)}, &ctap.LargeBlobsRequest{Get: ctap.Uint(50), Offset: ctap.Uint(50)})
	seed(&ctap.LargeBlobsRequest{Set: blob[:60], Offset: ctap.Uint(0), Length: ctap.Uint(100)}, &ctap.LargeBlobsRequest{Set: blob[60:], Offset: ctap.Uint(60)})
	seed(&ctap.LargeBlobsRequest{Set: blob, Offset: ctap.Uint(0), Length: ctap.Uint(100), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: make([]byte, 32)}, &ctap.LargeBlobsRequest{Get: ctap.Uint(1), Offset: ctap.Uint(99)})
	f.Add([]byte{0xa0}, []byte{0xa1, 0x03, 0x00})
	before := mgmtFuzzState(f, protected)
	maxArr := protected.Persona().MaxSerializedLargeBlobArray
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, k := range []*testKey{protected, open} {
			require.NoError(t, k.Store().PutLargeBlobs(store.InitialLargeBlobs))
			if k == protected {
				require.NoError(t, k.Store().PutLargeBlobs(lbArray(200, 0x5a)))
			}
			mgmtFuzzCall(t, k, ctap.CmdLargeBlobs, a, ctap.PermLargeBlobWrite)
			// The second request goes to the same power cycle as the first.
			resp := k.HandleCBOR(context.Background(), append([]byte{byte(ctap.CmdLargeBlobs)}, b...), nil)
			require.NotEmpty(t, resp)
			if resp[0] == byte(ctap.StatusOK) && len(resp) > 1 {
				var lr ctap.LargeBlobsResponse
				require.NoError(t, ctap.Unmarshal(resp[1:], &lr))
				require.LessOrEqual(t, len(lr.Config), k.Persona().MaxMsgSize-64)
			}
		}
		require.Equal(t, before, mgmtFuzzState(t, protected), "protected array changed by %x / %x", a, b)
		lb, err := open.Store().LargeBlobs()
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(lb), largeBlobMinLength)
		require.LessOrEqual(t, len(lb), maxArr)
		h := sha256.Sum256(lb[:len(lb)-largeBlobHashLen])
		require.Equal(t, h[:largeBlobHashLen], lb[len(lb)-largeBlobHashLen:], "stored array fails its hash")
	})
}
