package peers

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/peers/peertest"
)

// pythonOperations is every row the python-fido2 script prints, in order.
var pythonOperations = []string{
	"hid.init", "hid.ping", "hid.ping_oversize", "hid.wink", "hid.cancel", "hid.keepalive",
	"u2f.register_authenticate",
	"ctap2.get_info", "ctap2.make_credential", "ctap2.make_credential_eddsa", "ctap2.get_assertion",
	"ctap2.resident_credentials", "ctap2.selection", "fido2_client.make_get_no_pin",
	"client_pin.set_pin", "client_pin.protocol_1", "client_pin.protocol_2", "client_pin.permissions",
	"ctap2.uv_by_pin", "hmac_secret.protocol_1", "hmac_secret.protocol_2", "cred_blob",
	"fido2_client.make_get_pin", "fido2_client.hmac_secret_cred_blob",
	"cred_mgmt", "bio_enroll", "large_blobs", "config", "client_pin.block_and_power_cycle", "ctap2.reset",
}

// pythonUnsupported is, per built-in persona, the operations that must come out "unsupported"
// (the key refused them the way a client expects); every other operation must pass.
var pythonUnsupported = map[string][]string{
	"default": nil,
	"ctap22":  nil, // default + CTAP 2.2: python-fido2 0.9.1 predates 2.2 and uses none of it, all passes
	"ctap20": {"ctap2.make_credential_eddsa", "ctap2.selection", "client_pin.protocol_2",
		"client_pin.permissions", "hmac_secret.protocol_2", "cred_blob", "cred_mgmt", "bio_enroll",
		"large_blobs", "config"},
	"no-hmac-secret": {"ctap2.make_credential_eddsa", "hmac_secret.protocol_1", "hmac_secret.protocol_2",
		"bio_enroll"},
	// A U2F-only key: everything but CTAPHID, CTAP1 and Fido2Client's CTAP1 fallback.
	"u2f": without(pythonOperations, "hid.init", "hid.ping", "hid.ping_oversize", "hid.wink",
		"u2f.register_authenticate", "fido2_client.make_get_no_pin", "fido2_client.make_get_pin"),
}

func without(all []string, drop ...string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

func TestPythonFido2AgainstEveryPersona(t *testing.T) {
	ctx := context.Background()
	peertest.Require(t, "python-fido2 (/usr/bin/python3 + python3-fido2)", CheckPythonFido2(ctx))
	require.ElementsMatch(t, persona.Names(), keys(pythonUnsupported),
		"every built-in persona needs a row in pythonUnsupported")
	for _, name := range persona.Names() {
		t.Run(name, func(t *testing.T) {
			p, err := persona.Builtin(name)
			require.NoError(t, err)
			lk, err := ServeLocal(p)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, lk.Close()) })
			ctl := httptest.NewServer(control.Handler(lk.Key))
			t.Cleanup(ctl.Close)

			rows, err := RunPythonFido2(ctx, lk.Socket, ctl.URL, name)
			for _, r := range rows {
				t.Log(r)
			}
			require.NoError(t, err)

			ops := make([]string, 0, len(rows))
			for _, r := range rows {
				ops = append(ops, r.Operation)
				require.Equal(t, "python-fido2", r.Client)
				require.Equal(t, name, r.Persona)
				want := ResultPass
				if slices.Contains(pythonUnsupported[name], r.Operation) {
					want = ResultUnsupported
				}
				require.Equal(t, want, r.Result, "%s: %s", r.Operation, r.Detail)
				if r.Operation == "client_pin.set_pin" && want == ResultPass {
					// python-fido2 0.9.1 takes either answer to getPINRetries without a PIN;
					// the persona decides which one the key gives.
					before := "PIN_NOT_SET"
					if p.Quirks.PINRetriesWithoutPIN {
						before = "8 retries"
					}
					require.Contains(t, r.Detail, "getPINRetries before setPIN: "+before+";")
				}
			}
			require.Equal(t, pythonOperations, ops, "the script ran a different set of operations")
		})
	}
}

// The embedded scripts are the files in testdata, so the peer that runs is the one reviewed.
func TestPythonScriptsEmbedded(t *testing.T) {
	entries, err := pythonScripts.ReadDir("testdata")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		onDisk, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		require.NoError(t, err)
		embedded, err := pythonScripts.ReadFile("testdata/" + e.Name())
		require.NoError(t, err)
		require.Equal(t, onDisk, embedded, e.Name())
	}
	require.Equal(t, []string{"pyfido2_ctap2.py", "pyfido2_mgmt.py", "pyfido2_peer.py"}, names)
	main, err := pythonScripts.ReadFile("testdata/pyfido2_peer.py")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(main), "#!/usr/bin/python3\n"))
}

func TestRunPythonFido2ReportsMissingSocket(t *testing.T) {
	ctx := context.Background()
	peertest.Require(t, "python-fido2 (/usr/bin/python3 + python3-fido2)", CheckPythonFido2(ctx))
	rows, err := RunPythonFido2(ctx, filepath.Join(t.TempDir(), "absent.sock"), "http://127.0.0.1:1", "default")
	require.Error(t, err, "the script exits non-zero when it cannot reach the key")
	require.Len(t, rows, 1)
	require.Equal(t, ResultFail, rows[0].Result)
	require.Equal(t, "hid.init", rows[0].Operation)
}
