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
	require.Equal(t, 2, k.Faults.State().Injected)

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
	require.Zero(t, k.Faults.State().Silent)

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
	go func() { _, err := c.MakeCredential(ctx, mc("example.com", "bob")); done <- err }()
	time.Sleep(200 * time.Millisecond)
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
