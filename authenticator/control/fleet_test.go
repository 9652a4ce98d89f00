package control

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fidolab/fidolab/authenticator/fleet"
	"github.com/stretchr/testify/require"
)

func TestFleetHandler(t *testing.T) {
	t.Parallel()
	f, err := fleet.Open(fleet.Options{N: 3})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	var entries []Entry
	for n := 1; n <= 3; n++ {
		k, _ := f.Key(n)
		entries = append(entries, Entry{Name: fleet.Name(n), Key: k, Endpoint: "unix:/tmp/keys/" + fleet.Name(n) + ".sock"})
	}
	srv := httptest.NewServer(FleetHandler(entries))
	t.Cleanup(srv.Close)
	key := func(n int) *Entry { return &entries[n-1] }

	code, body := call(t, "GET", srv.URL+"/state", "")
	require.Equal(t, http.StatusOK, code)
	keys := body["keys"].([]any)
	require.Len(t, keys, 3)
	second := keys[1].(map[string]any)
	require.Equal(t, "usb2", second["key"])
	require.Equal(t, "unix:/tmp/keys/usb2.sock", second["endpoint"])
	require.Equal(t, "default", second["persona"])
	require.Contains(t, second, "pin", "each key's whole state")

	// python-fido2's controller paths pick the key by N.
	code, _ = call(t, "GET", srv.URL+"/usb2/touch/off", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "manual", key(2).Key.Knobs().User)
	require.False(t, key(2).Key.Knobs().FingerHeld)
	require.Equal(t, "yes", key(1).Key.Knobs().User, "the other keys are untouched")
	code, _ = call(t, "GET", srv.URL+"/usb3/power/off", "")
	require.Equal(t, http.StatusOK, code)
	require.False(t, key(3).Key.Plugged())
	require.True(t, key(1).Key.Plugged())
	code, _ = call(t, "GET", srv.URL+"/usb3/power/on", "")
	require.Equal(t, http.StatusOK, code)
	require.True(t, key(3).Key.Plugged())

	// The whole one-key API under /usbN/.
	code, body = call(t, "PATCH", srv.URL+"/usb1/knobs", `{"processingDelayMs":25}`)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, 25, key(1).Key.Knobs().ProcessingDelayMs)
	require.Zero(t, key(2).Key.Knobs().ProcessingDelayMs)
	code, body = call(t, "GET", srv.URL+"/usb1/state", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "default", body["persona"])

	code, body = call(t, "GET", srv.URL+"/usb4/state", "")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, body["error"], "usb1…usb3")
	code, _ = call(t, "GET", srv.URL+"/usb0/touch/on", "")
	require.Equal(t, http.StatusNotFound, code)

	code, body = call(t, "GET", srv.URL+"/", "")
	require.Equal(t, http.StatusOK, code)
	require.Len(t, body["keys"], 3)

	// The same guard as one key's API: a foreign Host is refused.
	req, err := http.NewRequest("GET", srv.URL+"/usb1/power/off", nil)
	require.NoError(t, err)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.True(t, key(1).Key.Plugged())
}
