package fleet

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

func TestOpenMakesOneStateFilePerKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	u2f, err := persona.Builtin("u2f")
	require.NoError(t, err)
	f, err := Open(Options{N: 11, StateDir: dir, Persona: u2f})
	require.NoError(t, err)
	require.Equal(t, 11, f.Len())
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	for n := 1; n <= 11; n++ {
		k, ok := f.Key(n)
		require.True(t, ok)
		require.Equal(t, StatePath(dir, n), k.StatePath())
		fi, err := os.Stat(k.StatePath())
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	_, ok := f.Key(0)
	require.False(t, ok)
	_, ok = f.Key(12)
	require.False(t, ok)
	for _, k := range f.Keys() {
		require.Equal(t, "u2f", k.Persona.Name)
	}
	files, err := StateFiles(dir)
	require.NoError(t, err)
	require.Len(t, files, 11)
	require.Equal(t, StatePath(dir, 2), files[1], "usb2 before usb10")
	require.Equal(t, StatePath(dir, 10), files[9])
	require.NoError(t, f.Close())

	// Reopened without a persona, each key is the persona its file was created with.
	f, err = Open(Options{N: 2, StateDir: dir})
	require.NoError(t, err)
	defer f.Close()
	k, _ := f.Key(2)
	require.Equal(t, "u2f", k.Persona.Name)
}

// TestKeysAreSeparate: a credential made on one key is unknown to another, and each key has its
// own simulated user.
func TestKeysAreSeparate(t *testing.T) {
	t.Parallel()
	f, err := Open(Options{N: 2, User: func(n int) (user.Policy, error) {
		if n == 2 {
			return user.Fixed(user.No), nil
		}
		return user.Always, nil
	}})
	require.NoError(t, err)
	defer f.Close()
	k1, _ := f.Key(1)
	k2, _ := f.Key(2)
	call := func(d *ctaphid.Device, cmd ctap.Command, req any) ctap.Status {
		t.Helper()
		body, err := ctap.Marshal(req)
		require.NoError(t, err)
		c := ctaphid.NewClient(inprocConn(d))
		resp, err := c.CBOR(context.Background(), append([]byte{byte(cmd)}, body...))
		require.NoError(t, err)
		return ctap.Status(resp[0])
	}
	alg := int64(-7)
	mc := &ctap.MakeCredentialRequest{
		ClientDataHash:   make([]byte, 32),
		RP:               &ctap.RPEntity{ID: "example.com"},
		User:             &ctap.UserEntity{ID: []byte("u1"), Name: "u1"},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
		Options:          &ctap.Options{RK: ctap.Bool(true)},
	}
	require.Equal(t, ctap.StatusOK, call(k1.Device, ctap.CmdMakeCredential, mc))
	require.Equal(t, ctap.ErrOperationDenied, call(k2.Device, ctap.CmdMakeCredential, mc), "key 2's user says no")
	ga := &ctap.GetAssertionRequest{RPID: "example.com", ClientDataHash: make([]byte, 32)}
	require.Equal(t, ctap.StatusOK, call(k1.Device, ctap.CmdGetAssertion, ga))
	k2.User.Set(user.Always)
	require.Equal(t, ctap.ErrNoCredentials, call(k2.Device, ctap.CmdGetAssertion, ga))
}

func TestOpenFailsWhole(t *testing.T) {
	t.Parallel()
	_, err := Open(Options{N: 0})
	require.Error(t, err)
	_, err = Open(Options{N: MaxKeys + 1})
	require.Error(t, err)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(StatePath(dir, 3), []byte("not a state file"), 0o600))
	_, err = Open(Options{N: 4, StateDir: dir})
	require.ErrorContains(t, err, "usb3")
	b, err := os.ReadFile(StatePath(dir, 3))
	require.NoError(t, err)
	require.Equal(t, "not a state file", string(b), "a damaged file is left alone")
	require.NoError(t, os.Remove(StatePath(dir, 3)))
	f, err := Open(Options{N: 4, StateDir: dir}) // the other keys were closed: their files open again
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func inprocConn(d *ctaphid.Device) ctaphid.ReportConn { return inproc.Connect(d) }

// TestKeysShareOnePoolAndIdleHoldNothing: N keys sign from one nonce pool (every key's
// signature is counted by the fleet's one signer), opening N keys adds no goroutine beyond
// the shared signer's refiller, and keys that answered requests hold none once idle again.
func TestKeysShareOnePoolAndIdleHoldNothing(t *testing.T) {
	const n = 25
	before := runtime.NumGoroutine()
	f, err := Open(Options{N: n, StateDir: filepath.Join(t.TempDir(), "keys")})
	require.NoError(t, err)
	defer f.Close()
	opened := runtime.NumGoroutine()
	require.LessOrEqual(t, opened-before, 1, "N idle keys hold at most the shared signer's refiller")

	alg := int64(-7)
	mc, err := ctap.Marshal(&ctap.MakeCredentialRequest{
		ClientDataHash:   make([]byte, 32),
		RP:               &ctap.RPEntity{ID: "example.com"},
		User:             &ctap.UserEntity{ID: []byte("u1"), Name: "u1"},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
		Options:          &ctap.Options{RK: ctap.Bool(true)},
	})
	require.NoError(t, err)
	ga, err := ctap.Marshal(&ctap.GetAssertionRequest{RPID: "example.com", ClientDataHash: make([]byte, 32)})
	require.NoError(t, err)
	for _, k := range f.Keys() {
		conn := inprocConn(k.Device)
		c := ctaphid.NewClient(conn)
		resp, err := c.CBOR(context.Background(), append([]byte{byte(ctap.CmdMakeCredential)}, mc...))
		require.NoError(t, err)
		require.Equal(t, byte(ctap.StatusOK), resp[0])
		st := f.Signer().Stats()
		resp, err = c.CBOR(context.Background(), append([]byte{byte(ctap.CmdGetAssertion)}, ga...))
		require.NoError(t, err)
		require.Equal(t, byte(ctap.StatusOK), resp[0])
		after := f.Signer().Stats()
		require.Equal(t, st.Hits+st.Misses+1, after.Hits+after.Misses, "the assertion's nonce came from the shared pool")
		require.NoError(t, conn.Close())
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > opened && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), opened, "keys that answered hold no goroutine once idle")
}
