package authenticator

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/stretchr/testify/require"
)

const mgmtPIN = "1234"

// mgmtToken returns a pinUvAuthToken (protocol 2) with perms, bound to rpID when given. It goes
// through clientPIN when that command is built, and otherwise starts the token directly, so
// these tests do not wait for the clientPIN handler.
func (k *testKey) mgmtToken(perms uint64, rpID string) []byte {
	k.t.Helper()
	if _, ok := commands[ctap.CmdClientPIN]; ok {
		pin, err := k.Store().PIN()
		require.NoError(k.t, err)
		if !pin.Set {
			require.Equal(k.t, ctap.StatusOK, k.setPIN(2, mgmtPIN))
		}
		return k.mustToken(2, mgmtPIN, perms, rpID)
	}
	h := sha256.Sum256([]byte(mgmtPIN))
	require.NoError(k.t, k.Store().PutPIN(store.PIN{Set: true, Hash: h[:16], CodePoints: len(mgmtPIN), Retries: store.DefaultPINRetries}))
	k.mu.Lock()
	defer k.mu.Unlock()
	tok, err := k.issueToken(perms, rpID, true, false)
	require.NoError(k.t, err)
	return append([]byte(nil), tok...)
}

// mgmtSeed stores a resident credential with a real ES256 key and returns it with its COSE
// public key.
func (k *testKey) mgmtSeed(rpID, userID string, credProtect uint8) (*store.Credential, []byte) {
	k.t.Helper()
	priv, err := signer.GenerateKey(nil)
	require.NoError(k.t, err)
	secret, err := priv.Bytes()
	require.NoError(k.t, err)
	ck, err := cose.FromECDSA(cose.AlgES256, priv.Public())
	require.NoError(k.t, err)
	pub, err := ck.Marshal()
	require.NoError(k.t, err)
	c := &store.Credential{
		ID: []byte("cred-" + rpID + "-" + userID), RPID: rpID, RPName: "RP " + rpID,
		UserID: []byte(userID), UserName: userID + "@" + rpID, UserDisplayName: "User " + userID,
		Alg: int(cose.AlgES256), PrivateKey: secret, CredProtect: credProtect,
		LargeBlobKey: []byte("lbk-" + userID + "-0123456789abcdef"),
	}
	require.NoError(k.t, k.Store().PutResident(c))
	return c, pub
}

// cm sends one credentialManagement subcommand (cmd 0x0A or 0x41), authenticated with token
// when token is non-nil.
func (k *testKey) cm(cmd ctap.Command, token []byte, sub uint64, params *ctap.CredentialManagementParams) (ctap.Status, *ctap.CredentialManagementResponse) {
	k.t.Helper()
	req := &ctap.CredentialManagementRequest{SubCommand: ctap.Uint(sub)}
	if params != nil {
		raw, err := ctap.Marshal(params)
		require.NoError(k.t, err)
		req.SubCommandParams = raw
	}
	if token != nil {
		req.PinUvAuthProtocol = ctap.Uint(2)
		req.PinUvAuthParam = authParam(k.t, 2, token, append([]byte{byte(sub)}, req.SubCommandParams...))
	}
	st, body := k.call(cmd, req)
	if st != ctap.StatusOK || len(body) == 0 {
		return st, nil
	}
	var resp ctap.CredentialManagementResponse
	require.NoError(k.t, ctap.Unmarshal(body, &resp))
	return st, &resp
}

func (k *testKey) mustCM(cmd ctap.Command, token []byte, sub uint64, params *ctap.CredentialManagementParams) *ctap.CredentialManagementResponse {
	k.t.Helper()
	st, resp := k.cm(cmd, token, sub, params)
	require.Equal(k.t, ctap.StatusOK, st, "subcommand %d", sub)
	return resp
}

func rpHash(rpID string) []byte {
	h := sha256.Sum256([]byte(rpID))
	return h[:]
}

// mgmtEnumerateRPs walks enumerateRPsBegin/GetNextRP and checks the totals.
func (k *testKey) mgmtEnumerateRPs(cmd ctap.Command, token []byte) []string {
	k.t.Helper()
	first := k.mustCM(cmd, token, ctap.CMEnumerateRPsBegin, nil)
	require.NotNil(k.t, first.TotalRPs)
	ids := []string{first.RP.ID}
	require.Equal(k.t, rpHash(first.RP.ID), first.RPIDHash)
	for range int(*first.TotalRPs) - 1 {
		next := k.mustCM(cmd, nil, ctap.CMEnumerateRPsGetNextRP, nil)
		require.Nil(k.t, next.TotalRPs, "totalRPs only in the Begin response")
		require.Equal(k.t, rpHash(next.RP.ID), next.RPIDHash)
		ids = append(ids, next.RP.ID)
	}
	st, _ := k.cm(cmd, nil, ctap.CMEnumerateRPsGetNextRP, nil)
	require.Equal(k.t, ctap.ErrNotAllowed, st, "no RP left")
	return ids
}

// mgmtEnumerateCreds walks enumerateCredentialsBegin/GetNextCredential for rpID.
func (k *testKey) mgmtEnumerateCreds(cmd ctap.Command, token []byte, rpID string) []*ctap.CredentialManagementResponse {
	k.t.Helper()
	first := k.mustCM(cmd, token, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash(rpID)})
	require.NotNil(k.t, first.TotalCredentials)
	out := []*ctap.CredentialManagementResponse{first}
	for range int(*first.TotalCredentials) - 1 {
		next := k.mustCM(cmd, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
		require.Nil(k.t, next.TotalCredentials)
		out = append(out, next)
	}
	st, _ := k.cm(cmd, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
	require.Equal(k.t, ctap.ErrNotAllowed, st, "no credential left")
	return out
}

func TestCredMgmtEnumerateAndDelete(t *testing.T) {
	t.Parallel()
	for _, cmd := range []ctap.Command{ctap.CmdCredentialManagement, ctap.CmdCredentialManagementPre} {
		t.Run(cmd.String(), func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			layout := map[string][]string{"a.example": {"u1", "u2"}, "b.example": {"u1"}, "c.example": {"u1", "u2", "u3"}}
			pubs := map[string][]byte{}
			creds := map[string]*store.Credential{}
			for _, rp := range []string{"a.example", "b.example", "c.example"} {
				for i, u := range layout[rp] {
					c, pub := k.mgmtSeed(rp, u, uint8(i%3+1))
					pubs[string(c.ID)], creds[string(c.ID)] = pub, c
				}
			}
			tok := k.mgmtToken(ctap.PermCredentialManagement, "")

			md := k.mustCM(cmd, tok, ctap.CMGetCredsMetadata, nil)
			require.Equal(t, uint64(6), *md.ExistingResidentCredentialsCount)
			require.Equal(t, uint64(k.Persona().ResidentCapacity-6), *md.MaxPossibleRemainingResidentCredentialsCount)

			rps := k.mgmtEnumerateRPs(cmd, tok)
			require.ElementsMatch(t, []string{"a.example", "b.example", "c.example"}, rps)

			for rp, users := range layout {
				got := k.mgmtEnumerateCreds(cmd, tok, rp)
				require.Equal(t, uint64(len(users)), *got[0].TotalCredentials)
				var seen []string
				for _, r := range got {
					want := creds[string(r.CredentialID.ID)]
					require.NotNil(t, want, "unknown credential returned")
					require.Equal(t, ctap.CredentialTypePublicKey, r.CredentialID.Type)
					require.Equal(t, want.UserID, []byte(r.User.ID))
					require.Equal(t, want.UserName, r.User.Name)
					require.Equal(t, want.UserDisplayName, r.User.DisplayName)
					require.Equal(t, pubs[string(want.ID)], []byte(r.PublicKey), "public key derived from the stored private key")
					require.Equal(t, uint64(want.CredProtect), *r.CredProtect)
					require.Equal(t, want.LargeBlobKey, r.LargeBlobKey)
					seen = append(seen, string(r.User.ID))
				}
				require.ElementsMatch(t, users, seen)
			}

			// Delete one of c.example's, then all of b.example's.
			k.mustCM(cmd, tok, ctap.CMDeleteCredential, &ctap.CredentialManagementParams{
				CredentialID: &ctap.CredentialDescriptor{ID: []byte("cred-c.example-u2"), Type: ctap.CredentialTypePublicKey}})
			k.mustCM(cmd, tok, ctap.CMDeleteCredential, &ctap.CredentialManagementParams{
				CredentialID: &ctap.CredentialDescriptor{ID: []byte("cred-b.example-u1"), Type: ctap.CredentialTypePublicKey}})
			st, _ := k.cm(cmd, tok, ctap.CMDeleteCredential, &ctap.CredentialManagementParams{
				CredentialID: &ctap.CredentialDescriptor{ID: []byte("cred-b.example-u1"), Type: ctap.CredentialTypePublicKey}})
			require.Equal(t, ctap.ErrNoCredentials, st, "deleting twice")

			md = k.mustCM(cmd, tok, ctap.CMGetCredsMetadata, nil)
			require.Equal(t, uint64(4), *md.ExistingResidentCredentialsCount)
			require.Equal(t, uint64(k.Persona().ResidentCapacity-4), *md.MaxPossibleRemainingResidentCredentialsCount)
			require.ElementsMatch(t, []string{"a.example", "c.example"}, k.mgmtEnumerateRPs(cmd, tok))
			got := k.mgmtEnumerateCreds(cmd, tok, "c.example")
			require.Equal(t, uint64(2), *got[0].TotalCredentials)
			for _, r := range got {
				require.NotEqual(t, []byte("u2"), r.User.ID)
			}
			st, _ = k.cm(cmd, tok, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("b.example")})
			require.Equal(t, ctap.ErrNoCredentials, st)
		})
	}
}

func TestCredMgmtNewestFirst(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	for _, u := range []string{"old", "mid", "new"} {
		k.mgmtSeed("order.example", u, 0)
	}
	tok := k.mgmtToken(ctap.PermCredentialManagement, "")
	var users []string
	for _, r := range k.mgmtEnumerateCreds(ctap.CmdCredentialManagement, tok, "order.example") {
		users = append(users, string(r.User.ID))
		require.Equal(t, uint64(ctap.CredProtectUVOptional), *r.CredProtect, "no credProtect reads as level 1")
	}
	require.Equal(t, []string{"new", "mid", "old"}, users)
}

func TestCredMgmtErrors(t *testing.T) {
	t.Parallel()
	cmd := ctap.CmdCredentialManagement
	credParam := func(id string) *ctap.CredentialManagementParams {
		return &ctap.CredentialManagementParams{CredentialID: &ctap.CredentialDescriptor{ID: []byte(id), Type: ctap.CredentialTypePublicKey}}
	}
	tests := []struct {
		name string
		run  func(k *testKey, tok []byte) ctap.Status
		want ctap.Status
	}{
		{"malformed CBOR", func(k *testKey, _ []byte) ctap.Status { st, _ := k.call(cmd, []byte{0xa1, 0x01}); return st }, ctap.ErrInvalidCBOR},
		{"no subCommand", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.call(cmd, map[int]int{3: 2})
			return st
		}, ctap.ErrMissingParameter},
		{"subCommandParams not a map", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.call(cmd, map[int]any{1: 4, 2: "x"})
			return st
		}, ctap.ErrCBORUnexpectedType},
		{"unknown subCommand", func(k *testKey, tok []byte) ctap.Status { st, _ := k.cm(cmd, tok, 0x42, nil); return st }, ctap.ErrInvalidSubcommand},
		{"no pinUvAuthParam", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, nil, ctap.CMGetCredsMetadata, nil)
			return st
		}, ctap.ErrPUATRequired},
		{"no pinUvAuthProtocol", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.CredentialManagementRequest{SubCommand: ctap.Uint(1), PinUvAuthParam: authParam(k.t, 2, tok, []byte{1})})
			return st
		}, ctap.ErrMissingParameter},
		{"unsupported pinUvAuthProtocol", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.CredentialManagementRequest{SubCommand: ctap.Uint(1), PinUvAuthProtocol: ctap.Uint(7), PinUvAuthParam: authParam(k.t, 2, tok, []byte{1})})
			return st
		}, ctap.ErrInvalidParameter},
		{"wrong pinUvAuthParam", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.CredentialManagementRequest{SubCommand: ctap.Uint(1), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: authParam(k.t, 2, tok, []byte{2})})
			return st
		}, ctap.ErrPINAuthInvalid},
		{"params not covered by the MAC", func(k *testKey, tok []byte) ctap.Status {
			raw, _ := ctap.Marshal(&ctap.CredentialManagementParams{RPIDHash: rpHash("a.example")})
			st, _ := k.call(cmd, &ctap.CredentialManagementRequest{SubCommand: ctap.Uint(4), SubCommandParams: raw, PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: authParam(k.t, 2, tok, []byte{4})})
			return st
		}, ctap.ErrPINAuthInvalid},
		{"token without cm", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermGetAssertion, "a.example"), ctap.CMGetCredsMetadata, nil)
			return st
		}, ctap.ErrPINAuthInvalid},
		{"getNextRP without Begin", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, nil, ctap.CMEnumerateRPsGetNextRP, nil)
			return st
		}, ctap.ErrNotAllowed},
		{"getNextCredential without Begin", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
			return st
		}, ctap.ErrNotAllowed},
		{"getNextCredential after RP Begin", func(k *testKey, tok []byte) ctap.Status {
			k.mustCM(cmd, tok, ctap.CMEnumerateRPsBegin, nil)
			st, _ := k.cm(cmd, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
			return st
		}, ctap.ErrNotAllowed},
		{"single credential: no next", func(k *testKey, tok []byte) ctap.Status {
			k.mustCM(cmd, tok, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("b.example")})
			st, _ := k.cm(cmd, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
			return st
		}, ctap.ErrNotAllowed},
		{"another subcommand ends the enumeration", func(k *testKey, tok []byte) ctap.Status {
			k.mustCM(cmd, tok, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("a.example")})
			k.mustCM(cmd, tok, ctap.CMGetCredsMetadata, nil)
			st, _ := k.cm(cmd, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
			return st
		}, ctap.ErrNotAllowed},
		{"rpIDHash missing", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.cm(cmd, tok, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{})
			return st
		}, ctap.ErrMissingParameter},
		{"unknown rpIDHash", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.cm(cmd, tok, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("nobody.example")})
			return st
		}, ctap.ErrNoCredentials},
		{"RP-bound token: metadata", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermCredentialManagement, "a.example"), ctap.CMGetCredsMetadata, nil)
			return st
		}, ctap.ErrPINAuthInvalid},
		{"RP-bound token: enumerate RPs", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermCredentialManagement, "a.example"), ctap.CMEnumerateRPsBegin, nil)
			return st
		}, ctap.ErrPINAuthInvalid},
		{"RP-bound token: other RP's credentials", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermCredentialManagement, "a.example"), ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("b.example")})
			return st
		}, ctap.ErrPINAuthInvalid},
		{"RP-bound token: own RP's credentials", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermCredentialManagement, "a.example"), ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("a.example")})
			return st
		}, ctap.StatusOK},
		{"RP-bound token: delete other RP's", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermCredentialManagement, "a.example"), ctap.CMDeleteCredential, credParam("cred-b.example-u1"))
			return st
		}, ctap.ErrPINAuthInvalid},
		{"RP-bound token: delete own RP's", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermCredentialManagement, "a.example"), ctap.CMDeleteCredential, credParam("cred-a.example-u1"))
			return st
		}, ctap.StatusOK},
		{"RP-bound token: update other RP's", func(k *testKey, _ []byte) ctap.Status {
			p := credParam("cred-b.example-u1")
			p.User = &ctap.UserEntity{ID: []byte("u1"), Name: "x"}
			st, _ := k.cm(cmd, k.mgmtToken(ctap.PermCredentialManagement, "a.example"), ctap.CMUpdateUserInformation, p)
			return st
		}, ctap.ErrPINAuthInvalid},
		{"delete: credentialId missing", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.cm(cmd, tok, ctap.CMDeleteCredential, &ctap.CredentialManagementParams{})
			return st
		}, ctap.ErrMissingParameter},
		{"delete: unknown credential", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.cm(cmd, tok, ctap.CMDeleteCredential, credParam("nope"))
			return st
		}, ctap.ErrNoCredentials},
		{"update: user missing", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.cm(cmd, tok, ctap.CMUpdateUserInformation, credParam("cred-a.example-u1"))
			return st
		}, ctap.ErrMissingParameter},
		{"update: unknown credential", func(k *testKey, tok []byte) ctap.Status {
			p := credParam("nope")
			p.User = &ctap.UserEntity{ID: []byte("u1")}
			st, _ := k.cm(cmd, tok, ctap.CMUpdateUserInformation, p)
			return st
		}, ctap.ErrNoCredentials},
		{"update: user.id mismatch", func(k *testKey, tok []byte) ctap.Status {
			p := credParam("cred-a.example-u1")
			p.User = &ctap.UserEntity{ID: []byte("u2"), Name: "mallory"}
			st, _ := k.cm(cmd, tok, ctap.CMUpdateUserInformation, p)
			return st
		}, ctap.ErrInvalidParameter},
		{"expired token", func(k *testKey, tok []byte) ctap.Status {
			k.clock.Advance(11 * time.Minute)
			st, _ := k.cm(cmd, tok, ctap.CMGetCredsMetadata, nil)
			return st
		}, ctap.ErrPINAuthInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			k.mgmtSeed("a.example", "u1", 0)
			k.mgmtSeed("a.example", "u2", 0)
			k.mgmtSeed("b.example", "u1", 0)
			tok := k.mgmtToken(ctap.PermCredentialManagement, "")
			before := mgmtSnapshot(t, k)
			require.Equal(t, tc.want, tc.run(k, tok))
			if tc.want != ctap.StatusOK {
				require.Equal(t, before, mgmtSnapshot(t, k), "a refused request changed the store")
			}
		})
	}
}

func TestCredMgmtEmpty(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	tok := k.mgmtToken(ctap.PermCredentialManagement, "")
	md := k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMGetCredsMetadata, nil)
	require.Equal(t, uint64(0), *md.ExistingResidentCredentialsCount)
	require.Equal(t, uint64(k.Persona().ResidentCapacity), *md.MaxPossibleRemainingResidentCredentialsCount)
	st, _ := k.cm(ctap.CmdCredentialManagement, tok, ctap.CMEnumerateRPsBegin, nil)
	require.Equal(t, ctap.ErrNoCredentials, st)
}

// A credential that disappears behind an enumeration's back (reset, an overwriting
// makeCredential) is skipped, never returned from a stale copy.
func TestCredMgmtStaleEnumeration(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	for _, u := range []string{"u1", "u2", "u3"} {
		k.mgmtSeed("s.example", u, 0)
	}
	k.mgmtSeed("t.example", "u1", 0)
	k.mgmtSeed("w.example", "u1", 0)
	tok := k.mgmtToken(ctap.PermCredentialManagement, "")

	first := k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("s.example")})
	require.Equal(t, []byte("u3"), []byte(first.User.ID))
	require.NoError(t, k.Store().DeleteResident([]byte("cred-s.example-u2")))
	next := k.mustCM(ctap.CmdCredentialManagement, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
	require.Equal(t, []byte("u1"), []byte(next.User.ID))
	st, _ := k.cm(ctap.CmdCredentialManagement, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
	require.Equal(t, ctap.ErrNotAllowed, st)

	rp := k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMEnumerateRPsBegin, nil)
	require.Equal(t, uint64(3), *rp.TotalRPs)
	require.Equal(t, "w.example", rp.RP.ID, "newest RP first")
	require.NoError(t, k.Store().DeleteResident([]byte("cred-t.example-u1")))
	next = k.mustCM(ctap.CmdCredentialManagement, nil, ctap.CMEnumerateRPsGetNextRP, nil)
	require.Equal(t, "s.example", next.RP.ID)
	st, _ = k.cm(ctap.CmdCredentialManagement, nil, ctap.CMEnumerateRPsGetNextRP, nil)
	require.Equal(t, ctap.ErrNotAllowed, st)

	// A power cycle forgets the enumeration.
	k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpHash("s.example")})
	require.NoError(t, k.PowerCycle())
	st, _ = k.cm(ctap.CmdCredentialManagement, nil, ctap.CMEnumerateCredentialsGetNextCredential, nil)
	require.Equal(t, ctap.ErrNotAllowed, st)
}

func TestCredMgmtUpdateUser(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	c, _ := k.mgmtSeed("u.example", "alice", 0)
	tok := k.mgmtToken(ctap.PermCredentialManagement, "")
	update := func(name, display string) {
		k.mustCM(ctap.CmdCredentialManagementPre, tok, ctap.CMUpdateUserInformation, &ctap.CredentialManagementParams{
			CredentialID: &ctap.CredentialDescriptor{ID: c.ID, Type: ctap.CredentialTypePublicKey},
			User:         &ctap.UserEntity{ID: c.UserID, Name: name, DisplayName: display},
		})
	}
	update("alice.new@u.example", "Alice New")
	got := k.mgmtEnumerateCreds(ctap.CmdCredentialManagement, tok, "u.example")[0]
	require.Equal(t, "alice.new@u.example", got.User.Name)
	require.Equal(t, "Alice New", got.User.DisplayName)

	update("", "Only Display")
	got = k.mgmtEnumerateCreds(ctap.CmdCredentialManagement, tok, "u.example")[0]
	require.Empty(t, got.User.Name, "an absent name removes it")
	require.Equal(t, "Only Display", got.User.DisplayName)
	stored, err := k.Store().ResidentByID(c.ID)
	require.NoError(t, err)
	require.Empty(t, stored.UserName)
	require.Equal(t, c.Created, stored.Created, "an update does not reorder")
}

func TestCredMgmtNotOffered(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "ctap20")
	st, _ := k.cm(ctap.CmdCredentialManagement, nil, ctap.CMGetCredsMetadata, nil)
	require.Equal(t, ctap.ErrInvalidCommand, st)
}

// mgmtSnapshot captures every resident credential, for "nothing changed" checks.
func mgmtSnapshot(t testing.TB, k *testKey) []string {
	t.Helper()
	rps, err := k.Store().ResidentRPs()
	require.NoError(t, err)
	var out []string
	for _, rp := range rps {
		cs, err := k.Store().Resident(rp.ID)
		require.NoError(t, err)
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s|%x|%x|%s|%s|%d", c.RPID, c.ID, c.UserID, c.UserName, c.UserDisplayName, c.Created))
		}
	}
	slices.Sort(out)
	return out
}

// End to end with the real makeCredential and getAssertion: what credential management shows is
// what makeCredential attested, and an update or delete is what getAssertion sees next.
func TestCredMgmtWithMakeCredentialAndGetAssertion(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	type made struct{ id, pub, lbk []byte }
	madeBy := map[string]made{}
	for _, rc := range []struct{ rp, user string }{{"a.example", "alice"}, {"a.example", "bob"}, {"b.example", "carol"}, {"c.example", "dave"}} {
		req := makeCredReq(rc.rp, []byte(rc.user), true)
		req.Extensions = &ctap.MakeCredentialExtensions{CredProtect: ctap.Uint(ctap.CredProtectUVOptionalWithCredList), LargeBlobKey: ctap.Bool(true)}
		var resp ctap.MakeCredentialResponse
		k.must(ctap.CmdMakeCredential, req, &resp)
		ad, err := ctap.ParseAuthData(resp.AuthData)
		require.NoError(t, err)
		require.NotNil(t, ad.Attested)
		require.Len(t, resp.LargeBlobKey, 32)
		madeBy[rc.user] = made{ad.Attested.CredentialID, ad.Attested.PublicKey, resp.LargeBlobKey}
	}

	tok := k.mgmtToken(ctap.PermCredentialManagement, "")
	require.Equal(t, []string{"c.example", "b.example", "a.example"}, k.mgmtEnumerateRPs(ctap.CmdCredentialManagement, tok), "newest RP first")
	got := k.mgmtEnumerateCreds(ctap.CmdCredentialManagement, tok, "a.example")
	require.Len(t, got, 2)
	require.Equal(t, []byte("bob"), []byte(got[0].User.ID), "newest first")
	for _, r := range got {
		m := madeBy[string(r.User.ID)]
		require.Equal(t, m.id, []byte(r.CredentialID.ID))
		require.Equal(t, m.pub, []byte(r.PublicKey), "the attested public key")
		require.Equal(t, m.lbk, r.LargeBlobKey)
		require.Equal(t, uint64(ctap.CredProtectUVOptionalWithCredList), *r.CredProtect)
	}

	k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMUpdateUserInformation, &ctap.CredentialManagementParams{
		CredentialID: &ctap.CredentialDescriptor{ID: madeBy["alice"].id, Type: ctap.CredentialTypePublicKey},
		User:         &ctap.UserEntity{ID: []byte("alice"), Name: "alice.renamed", DisplayName: "Alice Renamed"},
	})
	k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMDeleteCredential, &ctap.CredentialManagementParams{
		CredentialID: &ctap.CredentialDescriptor{ID: madeBy["carol"].id, Type: ctap.CredentialTypePublicKey}})

	assert := func(rpID string) (ctap.Status, *ctap.GetAssertionResponse) {
		gaTok := k.mgmtToken(ctap.PermGetAssertion, rpID)
		h := cdh()
		st, body := k.call(ctap.CmdGetAssertion, &ctap.GetAssertionRequest{RPID: rpID, ClientDataHash: h,
			PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: authParam(t, 2, gaTok, h)})
		if st != ctap.StatusOK {
			return st, nil
		}
		var resp ctap.GetAssertionResponse
		require.NoError(t, ctap.Unmarshal(body, &resp))
		return st, &resp
	}
	st, ga := assert("a.example")
	require.Equal(t, ctap.StatusOK, st)
	require.Equal(t, 2, ga.NumberOfCredentials)
	var next ctap.GetAssertionResponse
	k.must(ctap.CmdGetNextAssertion, nil, &next)
	require.Equal(t, []byte("alice"), []byte(next.User.ID))
	require.Equal(t, "alice.renamed", next.User.Name)
	require.Equal(t, "Alice Renamed", next.User.DisplayName)

	st, _ = assert("b.example")
	require.Equal(t, ctap.ErrNoCredentials, st, "deleted through credential management")
}
