package peers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/peers/peertest"
)

// libfido2Ops is every operation the libfido2 client reports, in its order.
var libfido2Ops = []string{
	"getInfo", "setPIN", "changePIN",
	"makeCredential", "makeCredential without PIN", "makeCredential EdDSA", "makeCredential resident",
	"makeCredential credProtect=1", "makeCredential credProtect=2", "makeCredential credProtect=3",
	"makeCredential hmac-secret", "makeCredential largeBlobKey",
	"getAssertion allowList", "getAssertion allowList, UV via PIN",
	"getAssertion discoverable", "getAssertion discoverable, UV via PIN", "getAssertion credProtect=3 without UV",
	"getAssertion hmac-secret, 1 salt", "getAssertion hmac-secret, 2 salts", "getAssertion hmac-secret, UV via PIN",
	"credMgmt metadata", "credMgmt enumerate", "credMgmt delete",
	"largeBlob set/get", "config toggleAlwaysUv", "config setMinPINLength", "bioEnroll",
	"U2F register+authenticate", "reset",
}

// libfido2Unsupported lists, per persona, the operations that must come back "unsupported"
// (libfido2 got the error it expects from a key without the feature); every other operation
// in libfido2Ops must pass, and operations marked "-" must not be reported at all.
var libfido2Unsupported = map[string]map[string]string{
	"default": {},
	"ctap22":  {}, // default + CTAP 2.2 (libfido2 1.12 knows none of it): everything passes
	"ctap20": {
		"makeCredential EdDSA": "unsupported", "makeCredential credProtect=1": "unsupported",
		"makeCredential credProtect=2": "unsupported", "makeCredential credProtect=3": "unsupported",
		"makeCredential largeBlobKey": "unsupported", "getAssertion credProtect=3 without UV": "unsupported",
		"credMgmt metadata": "unsupported", "credMgmt enumerate": "unsupported", "credMgmt delete": "unsupported",
		"largeBlob set/get": "unsupported", "config toggleAlwaysUv": "unsupported",
		"config setMinPINLength": "unsupported", "bioEnroll": "unsupported",
	},
	"no-hmac-secret": {
		"makeCredential EdDSA": "unsupported", "makeCredential hmac-secret": "unsupported",
		"getAssertion hmac-secret, 1 salt": "unsupported", "getAssertion hmac-secret, 2 salts": "-",
		"getAssertion hmac-secret, UV via PIN": "-",
		"bioEnroll":                            "unsupported",
	},
	"u2f": {
		"getInfo": "unsupported", "setPIN": "unsupported", "changePIN": "unsupported",
		"makeCredential EdDSA": "unsupported", "makeCredential resident": "unsupported",
		"makeCredential credProtect=1": "unsupported", "makeCredential credProtect=2": "unsupported",
		"makeCredential credProtect=3": "unsupported", "makeCredential hmac-secret": "unsupported",
		"makeCredential largeBlobKey": "unsupported", "getAssertion allowList, UV via PIN": "unsupported",
		"getAssertion discoverable": "unsupported", "getAssertion discoverable, UV via PIN": "-",
		"getAssertion credProtect=3 without UV": "-", "getAssertion hmac-secret, 1 salt": "unsupported",
		"getAssertion hmac-secret, 2 salts": "-", "getAssertion hmac-secret, UV via PIN": "-",
		"credMgmt metadata": "unsupported", "credMgmt enumerate": "unsupported", "credMgmt delete": "unsupported",
		"largeBlob set/get": "unsupported", "config toggleAlwaysUv": "unsupported",
		"config setMinPINLength": "unsupported", "bioEnroll": "unsupported", "reset": "unsupported",
	},
}

func TestLibfido2AgainstEveryPersona(t *testing.T) {
	bin, err := BuildLibfido2(t.TempDir())
	peertest.Require(t, "libfido2 ("+Libfido2Install+")", err)
	require.ElementsMatch(t, persona.Names(), keys(libfido2Unsupported), "every built-in persona needs an expectation")
	for _, name := range persona.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := persona.Builtin(name)
			require.NoError(t, err)
			lk, err := ServeLocal(p)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, lk.Close()) })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rows, err := RunLibfido2(ctx, bin, lk.Socket, name, Libfido2Options{Persona: p, Replug: lk.Replug})
			for _, r := range rows {
				t.Log(r)
			}
			require.NoError(t, err)

			want := map[string]string{}
			for _, op := range libfido2Ops {
				want[op] = ResultPass
				if v, ok := libfido2Unsupported[name][op]; ok {
					want[op] = v
				}
			}
			got := map[string]string{}
			for _, r := range rows {
				require.Equal(t, "libfido2", r.Client)
				require.Equal(t, name, r.Persona)
				require.NotContains(t, got, r.Operation, "operation reported twice")
				got[r.Operation] = r.Result
			}
			for _, op := range libfido2Ops {
				if want[op] == "-" {
					require.NotContains(t, got, op)
					continue
				}
				require.Equal(t, want[op], got[op], "%s", op)
			}
			require.Empty(t, Failed(rows))
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
