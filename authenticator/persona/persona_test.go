package persona

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuiltinsAreValid(t *testing.T) {
	t.Parallel()
	names := Names()
	require.Subset(t, names, []string{"default", "ctap20", "u2f", "no-hmac-secret"})
	seen := map[AAGUID]string{}
	for _, n := range names {
		p, err := Builtin(n)
		require.NoError(t, err, n)
		require.Equal(t, n, p.Name)
		if p.CTAP2 {
			prev, dup := seen[p.AAGUID]
			require.False(t, dup, "%s shares its AAGUID with %s", n, prev)
			seen[p.AAGUID] = n
		}
	}
	d, _ := Builtin("default")
	require.True(t, d.Has("FIDO_2_1") && d.HasExtension("hmac-secret") && d.ClientPIN && d.ResidentKeys)
	c, _ := Builtin("ctap20")
	require.False(t, c.Has("FIDO_2_1"))
	require.Equal(t, []int{1}, c.PinUvAuthProtocols)
	require.False(t, c.CredMgmt)
	u, _ := Builtin("u2f")
	require.False(t, u.CTAP2)
	n, _ := Builtin("no-hmac-secret")
	require.False(t, n.HasExtension("hmac-secret"))
}

func TestLoadFileWithBase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "vendor.yaml")
	require.NoError(t, os.WriteFile(f, []byte("base: default\nname: vendor-x\naaguid: 00112233-4455-6677-8899-aabbccddeeff\nresidentCapacity: 3\nquirks: {oldestFirst: true}\n"), 0o600))
	p, err := Load(f)
	require.NoError(t, err)
	require.Equal(t, "vendor-x", p.Name)
	require.Equal(t, "00112233-4455-6677-8899-aabbccddeeff", p.AAGUID.String())
	require.Equal(t, 3, p.ResidentCapacity)
	require.True(t, p.Quirks.OldestFirst)
	require.True(t, p.HasExtension("hmac-secret"), "fields not overridden come from the base")
}

func TestLoadRejectsBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown-field.yaml": "base: default\nname: x\nwhatever: 1\n",
		"bad-aaguid.yaml":    "base: default\nname: x\naaguid: nothex\n",
		"bad-alg.yaml":       "base: default\nname: x\nalgorithms: [-258]\n",
		"twice-alg.yaml":     "base: default\nname: x\nalgorithms: [-7, -35, -7]\n",
		"rsa-short-id.yaml":  "base: default\nname: x\nalgorithms: [-257]\n", // 286-byte IDs, maxCredentialIdLength 128
		"bad-base.yaml":      "base: nosuch\nname: x\n",
		"no-transport.yaml":  "base: default\nname: x\nctap2: false\nu2f: false\n",
	} {
		f := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(f, []byte(body), 0o600))
		_, err := Load(f)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), name, "the error names the file")
	}
	_, err := Load("no-such-persona")
	require.ErrorContains(t, err, "default")
}
