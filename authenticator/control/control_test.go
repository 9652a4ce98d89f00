package control

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/stretchr/testify/require"
)

func setup(t *testing.T) (*emulator.Key, *httptest.Server, *client.Client) {
	t.Helper()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	srv := httptest.NewServer(Handler(k))
	t.Cleanup(srv.Close)
	hid := ctaphid.NewClient(k.Connect())
	_, err = hid.Init(context.Background())
	require.NoError(t, err)
	return k, srv, client.New(hid)
}

func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func mc(rp, user string) *ctap.MakeCredentialRequest {
	alg := int64(-7)
	return &ctap.MakeCredentialRequest{ClientDataHash: make([]byte, 32), RP: &ctap.RPEntity{ID: rp},
		User: &ctap.UserEntity{ID: []byte(user), Name: user}, Options: &ctap.Options{RK: ctap.Bool(true)},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}}}
}

func TestFaultsAndUserPolicy(t *testing.T) {
	k, srv, c := setup(t)
	ctx := context.Background()

	code, st := call(t, "POST", srv.URL+"/faults", `{"failNext":["CTAP2_ERR_PIN_INVALID","0x2e"]}`)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{"CTAP2_ERR_PIN_INVALID", "CTAP2_ERR_NO_CREDENTIALS"}, st["failNext"])
	_, err := c.GetInfo(ctx)
	require.ErrorIs(t, err, ctap.ErrPINInvalid, "first injected status")
	_, err = c.GetInfo(ctx)
	require.ErrorIs(t, err, ctap.ErrNoCredentials, "second injected status")
	_, err = c.GetInfo(ctx)
	require.NoError(t, err, "faults are used up")
	require.Equal(t, 2, k.FaultState().Injected)

	code, _ = call(t, "POST", srv.URL+"/faults", `{"failNext":["CTAP2_ERR_NONSENSE"]}`)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = call(t, "POST", srv.URL+"/faults", `{"delayMs":-5}`)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = call(t, "POST", srv.URL+"/faults", `{"bogus":1}`)
	require.Equal(t, http.StatusBadRequest, code, "unknown fields are refused")

	// A silent key: the request never gets an answer until the host gives up (and cancels).
	code, _ = call(t, "POST", srv.URL+"/faults", `{"silent":1}`)
	require.Equal(t, http.StatusOK, code)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.GetInfo(short)
	cancel()
	require.Error(t, err)
	code, _ = call(t, "DELETE", srv.URL+"/faults", "")
	require.Equal(t, http.StatusOK, code)
	require.Zero(t, k.FaultState().Silent)

	// The simulated user refuses: makeCredential is denied as on a real key.
	code, u := call(t, "POST", srv.URL+"/user", `{"policy":"no"}`)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "no", u["user"])
	_, err = c.MakeCredential(ctx, mc("example.com", "alice"))
	require.ErrorIs(t, err, ctap.ErrOperationDenied)
	code, _ = call(t, "POST", srv.URL+"/user", `{"policy":"perhaps"}`)
	require.Equal(t, http.StatusBadRequest, code)

	// Manual mode: a waiting request is released by one touch.
	code, _ = call(t, "POST", srv.URL+"/user", `{"policy":"manual"}`)
	require.Equal(t, http.StatusOK, code)
	done := make(chan error, 1)
	asked := k.User.Asked()
	go func() { _, err := c.MakeCredential(ctx, mc("example.com", "bob")); done <- err }()
	require.Eventually(t, func() bool { return k.User.Asked() > asked }, 5*time.Second, time.Millisecond,
		"the key asks for a touch")
	select {
	case err := <-done:
		t.Fatalf("answered without a touch: %v", err)
	default:
	}
	code, _ = call(t, "POST", srv.URL+"/user/touch", "")
	require.Equal(t, http.StatusOK, code)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the touch did not release the request")
	}

	code, s := call(t, "GET", srv.URL+"/state", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "default", s["persona"])
	creds := s["credentials"].([]any)
	require.Len(t, creds, 1)
	require.Equal(t, "bob", creds[0].(map[string]any)["userName"])
	require.NotContains(t, strings.ToLower(mustJSON(t, s)), "privatekey", "no secret in the state")
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:80", "example.com:80", "nonsense"} {
		_, err := Listen(bad)
		require.Error(t, err, bad)
	}
	l, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

// knobsOf reads GET /knobs.
func knobsOf(t *testing.T, srv *httptest.Server) emulator.Knobs {
	t.Helper()
	code, m := call(t, "GET", srv.URL+"/knobs", "")
	require.Equal(t, http.StatusOK, code)
	var n emulator.Knobs
	require.NoError(t, json.Unmarshal([]byte(mustJSON(t, m)), &n))
	return n
}

func TestKnobs(t *testing.T) {
	t.Parallel()
	k, srv, c := setup(t)
	ctx := context.Background()
	n := knobsOf(t, srv)
	require.Equal(t, emulator.Knobs{Plugged: true, User: "yes", Keepalive: true, KeepaliveIntervalMs: 100,
		MessageTimeoutMs: 3000, FailNext: []string{}}, n, "a fresh default key")
	require.Equal(t, k.Knobs(), n)

	// PUT sets them all; what GET returns can be PUT back unchanged.
	n.User, n.ProcessingDelayMs, n.FailNext, n.KeepaliveIntervalMs = "no", 5, []string{"ERR_PIN_INVALID"}, 40
	code, m := call(t, "PUT", srv.URL+"/knobs", mustJSON(t, n))
	require.Equal(t, http.StatusOK, code, "%v", m)
	n.FailNext = []string{"CTAP2_ERR_PIN_INVALID"} // read back by name
	require.Equal(t, n, knobsOf(t, srv))
	code, _ = call(t, "PUT", srv.URL+"/knobs", mustJSON(t, knobsOf(t, srv)))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, n, knobsOf(t, srv))
	_, err := c.GetInfo(ctx)
	require.ErrorIs(t, err, ctap.ErrPINInvalid, "the queued status answers the next request")
	_, err = c.MakeCredential(ctx, mc("example.com", "alice"))
	require.ErrorIs(t, err, ctap.ErrOperationDenied, "the user knob says no")

	// PUT without every knob, or with a bad one, changes nothing.
	before := knobsOf(t, srv)
	for _, body := range []string{`{"user":"yes"}`, strings.Replace(mustJSON(t, before), `"user":"no"`, `"user":"perhaps"`, 1),
		strings.Replace(mustJSON(t, before), `"silent":0`, `"silent":-1`, 1),
		strings.Replace(mustJSON(t, before), `"messageTimeoutMs":3000`, `"messageTimeoutMs":0`, 1),
		strings.Replace(mustJSON(t, before), `"plugged":true`, `"plugged":true,"wings":2`, 1)} {
		code, m := call(t, "PUT", srv.URL+"/knobs", body)
		require.Equal(t, http.StatusBadRequest, code, body)
		require.NotEmpty(t, m["error"])
		require.Equal(t, before, knobsOf(t, srv), body)
	}

	// PATCH sets only what it names.
	code, m = call(t, "PATCH", srv.URL+"/knobs", `{"user":"yes","keepalive":false}`)
	require.Equal(t, http.StatusOK, code, "%v", m)
	want := before
	want.User, want.Keepalive = "yes", false
	require.Equal(t, want, knobsOf(t, srv))
	require.True(t, k.Device.Timing().NoKeepalive)
	code, _ = call(t, "PATCH", srv.URL+"/knobs", `{"processingDelayMs":-1}`)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = call(t, "PATCH", srv.URL+"/knobs", `{"plugged":false} {}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, want, knobsOf(t, srv))

	// DELETE /faults puts the fault knobs back as the key started.
	code, _ = call(t, "DELETE", srv.URL+"/faults", "")
	require.Equal(t, http.StatusOK, code)
	want.ProcessingDelayMs, want.FailNext = 0, []string{}
	require.Equal(t, want, knobsOf(t, srv))

	// Unplugged through the knobs: channels are dropped.
	code, _ = call(t, "PATCH", srv.URL+"/knobs", `{"plugged":false}`)
	require.Equal(t, http.StatusOK, code)
	require.False(t, k.Plugged())
	code, _ = call(t, "PATCH", srv.URL+"/knobs", `{"plugged":true}`)
	require.Equal(t, http.StatusOK, code)
	_, err = c.GetInfo(ctx)
	require.ErrorIs(t, err, ctaphid.ErrInvalidChannel)
}

// TestPythonFido2Endpoints drives the GET endpoints python-fido2's device tests use for a key
// without a button.
func TestPythonFido2Endpoints(t *testing.T) {
	t.Parallel()
	k, srv, c := setup(t)
	ctx := context.Background()
	code, m := call(t, "GET", srv.URL+"/", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "fidolab control API", m["service"])

	code, _ = call(t, "GET", srv.URL+"/usb3/touch/off", "")
	require.Equal(t, http.StatusOK, code)
	n := k.Knobs()
	require.Equal(t, "manual", n.User)
	require.False(t, n.FingerHeld)
	asked := k.User.Asked()
	done := make(chan error, 1)
	go func() { _, err := c.MakeCredential(ctx, mc("example.com", "carol")); done <- err }()
	require.Eventually(t, func() bool { return k.User.Asked() > asked }, 5*time.Second, time.Millisecond)
	code, _ = call(t, "GET", srv.URL+"/usb3/touch/on", "")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, <-done, "the finger on the key answers the waiting request")
	require.True(t, k.Knobs().FingerHeld)

	code, _ = call(t, "GET", srv.URL+"/usb0/power/off", "")
	require.Equal(t, http.StatusOK, code)
	require.False(t, k.Plugged())
	code, _ = call(t, "GET", srv.URL+"/usb0/power/on", "")
	require.Equal(t, http.StatusOK, code)
	require.True(t, k.Plugged())

	for _, bad := range []string{"/usbx/touch/on", "/usb1/touch/maybe", "/usb1/power/up"} {
		code, _ = call(t, "GET", srv.URL+bad, "")
		require.Equal(t, http.StatusNotFound, code, bad)
	}
}

func TestForeignRequestsRefused(t *testing.T) {
	t.Parallel()
	k, srv, _ := setup(t)
	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
		host   string
	}{
		{name: "DNS rebinding", method: "GET", host: "attacker.example:8765"},
		{name: "cross-site GET", method: "GET", header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{name: "cross-origin PATCH", method: "PATCH", header: map[string]string{"Origin": "https://attacker.example"}},
	} {
		path := "/usb0/power/off"
		if tc.method == "PATCH" {
			path = "/knobs"
		}
		req, err := http.NewRequest(tc.method, srv.URL+path, strings.NewReader(`{"plugged":false}`))
		require.NoError(t, err)
		if tc.host != "" {
			req.Host = tc.host
		}
		for h, v := range tc.header {
			req.Header.Set(h, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, tc.name)
		require.True(t, k.Plugged(), tc.name)
	}
	// The same requests from a local tool go through.
	code, _ := call(t, "PATCH", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/knobs", `{"silent":0}`)
	require.Equal(t, http.StatusOK, code)
}

// FuzzKnobsBody sends any body to PUT and PATCH /knobs: the answer is 200 with the knobs in
// effect or 400 with nothing changed, never a panic or a half-applied update.
func FuzzKnobsBody(f *testing.F) {
	k, err := emulator.Open(emulator.Options{})
	require.NoError(f, err)
	f.Cleanup(func() { _ = k.Close() })
	h := Handler(k)
	full, err := json.Marshal(k.Knobs())
	require.NoError(f, err)
	f.Add(true, string(full))
	f.Add(false, `{"processingDelayMs":5,"failNext":["0x31","ERR_NO_CREDENTIALS"]}`)
	f.Add(false, `{"user":"script:yes,no","fingerHeld":true}`)
	f.Add(false, `{"plugged":false,"silent":3}`)
	f.Add(false, `{"keepaliveIntervalMs":0}`)
	f.Add(true, `{"user":"delay:1ms"`)
	f.Fuzz(func(t *testing.T, put bool, body string) {
		method := "PATCH"
		if put {
			method = "PUT"
		}
		before := k.Knobs()
		req := httptest.NewRequest(method, "http://127.0.0.1/knobs", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var n emulator.Knobs
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &n))
			require.Equal(t, k.Knobs(), n, "the answer is the knobs in effect")
		case http.StatusBadRequest:
			require.Equal(t, before, k.Knobs(), "a refused body changes nothing")
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
