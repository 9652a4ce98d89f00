package control

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/stretchr/testify/require"
)

// do sends one request with the given headers (Host among them) and returns the status.
func do(t *testing.T, method, url, body string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for h, v := range header {
		if h == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(h, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestBrowserRequestsRefused is issue 9 item 1: whatever a web page on this machine can make a
// browser send is refused — a DNS-rebound Host, a request for another site or origin (for GET
// too: GET /usbN/power/off unplugs the key), a text/plain "simple" POST — and nothing changes.
// The same requests from a local tool (python-fido2, curl, the runner) go through.
func TestBrowserRequestsRefused(t *testing.T) {
	t.Parallel()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(NewHandler(k, Options{Addr: l.Addr()}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	port := l.Addr().(*net.TCPAddr).Port
	self := srv.URL[len("http://"):]
	json := map[string]string{"Content-Type": "application/json"}
	with := func(h map[string]string, more ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i < len(more); i += 2 {
			out[more[i]] = more[i+1]
		}
		return out
	}
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		want                     int
	}{
		{"DNS rebinding reads the state", "GET", "/state", "", map[string]string{"Host": "attacker.example:" + self[strings.LastIndex(self, ":")+1:]}, 403},
		{"DNS rebinding unplugs", "GET", "/usb0/power/off", "", map[string]string{"Host": "attacker.example"}, 403},
		{"another port on loopback", "GET", "/usb0/power/off", "", map[string]string{"Host": "127.0.0.1:1"}, 403},
		{"no port", "GET", "/state", "", map[string]string{"Host": "127.0.0.1"}, 403},
		{"cross-site GET unplugs", "GET", "/usb0/power/off", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site GET (a page on localhost:3000) unplugs", "GET", "/usb0/power/off", "", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"same-site GET lifts the finger", "GET", "/usb1/touch/off", "", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"old browser: foreign Origin on a GET", "GET", "/usb0/power/off", "", map[string]string{"Origin": "http://dashboard.example"}, 403},
		{"null Origin", "GET", "/usb0/power/off", "", map[string]string{"Origin": "null"}, 403},
		{"cross-origin text/plain POST approves presence", "POST", "/user", `{"policy":"no"}`,
			map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"text/plain POST without browser headers", "POST", "/user", `{"policy":"no"}`, map[string]string{"Content-Type": "text/plain"}, 415},
		{"form POST", "POST", "/faults", `{"silent":1}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"PATCH without a content type", "PATCH", "/knobs", `{"plugged":false}`, nil, 415},
		{"PUT as text", "PUT", "/knobs", `{}`, map[string]string{"Content-Type": "text/plain;charset=utf-8"}, 415},
		{"cross-origin PATCH", "PATCH", "/knobs", `{"plugged":false}`, with(json, "Origin", "https://attacker.example"), 403},
		// Allowed: local tools, the browser's own origin, a URL typed by the user.
		{"python-fido2 GET", "GET", "/usb2/touch/on", "", nil, 200},
		{"curl JSON PATCH", "PATCH", "/knobs", `{"silent":0}`, json, 200},
		{"JSON with charset", "POST", "/user", `{"policy":"yes"}`, with(json, "Content-Type", "application/json; charset=utf-8"), 200},
		{"localhost with the port", "GET", "/state", "", map[string]string{"Host": "localhost:" + strconv.Itoa(port)}, 200},
		{"same-origin fetch", "PATCH", "/knobs", `{"silent":0}`, with(json, "Sec-Fetch-Site", "same-origin", "Origin", "http://"+self), 200},
		{"typed in the address bar", "GET", "/state", "", map[string]string{"Sec-Fetch-Site": "none"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := k.Knobs()
			require.Equal(t, tc.want, do(t, tc.method, srv.URL+tc.path, tc.body, tc.header))
			if tc.want != 200 {
				require.Equal(t, before, k.Knobs(), "a refused request changes nothing")
			}
		})
	}
	require.True(t, k.Plugged())
}

// TestToken is issue 9 item 2: with a token, every request needs "Authorization: Bearer TOKEN".
func TestToken(t *testing.T) {
	t.Parallel()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	tok := "0123456789abcdef-secret"
	srv := httptest.NewServer(NewHandler(k, Options{Token: []byte(tok)}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", 401}, {"Bearer", 401}, {"Bearer ", 401}, {"Bearer wrong", 401}, {"Bearer " + tok + "x", 401},
		{"Bearer " + tok[:len(tok)-1], 401}, {"Basic " + tok, 401}, {tok, 401},
		{"Bearer " + tok, 200}, {"bearer " + tok, 200},
	} {
		for _, path := range []string{"/state", "/usb0/touch/on"} {
			h := map[string]string{}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			require.Equal(t, tc.want, do(t, "GET", srv.URL+path, "", h), "%q %s", tc.auth, path)
		}
	}
	resp, err := http.Get(srv.URL + "/knobs")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
	// The token does not let a browser in: the cross-site check comes first.
	require.Equal(t, 403, do(t, "GET", srv.URL+"/usb0/power/off", "", map[string]string{
		"Authorization": "Bearer " + tok, "Sec-Fetch-Site": "cross-site"}))
	require.True(t, k.Plugged())
}

// TestPowerOnWithoutOffKeepsPINBlocked is issue 9 item 3: three wrong PINs block the PIN until a
// power cycle; "power on" for a key that is on is not one (by the usbN path, the POST path, the
// knobs or the Go API). Only an off→on cycle lifts the block.
func TestPowerOnWithoutOffKeepsPINBlocked(t *testing.T) {
	t.Parallel()
	k, srv, c := setup(t)
	ctx := context.Background()
	const pin = "4711-pin"
	require.NoError(t, c.SetPIN(ctx, pin))
	for i := range 3 {
		_, err := c.GetPINToken(ctx, "0000", ctap.PermGetAssertion, "example.com")
		want := ctap.ErrPINInvalid
		if i == 2 {
			want = ctap.ErrPINAuthBlocked
		}
		require.ErrorIs(t, err, want)
	}
	blocked := func(c *client.Client) {
		t.Helper()
		_, err := c.GetPINToken(ctx, pin, ctap.PermGetAssertion, "example.com")
		require.ErrorIs(t, err, ctap.ErrPINAuthBlocked, "still blocked")
	}
	code, _ := call(t, "GET", srv.URL+"/usb0/power/on", "")
	require.Equal(t, http.StatusOK, code)
	blocked(c)
	code, _ = call(t, "POST", srv.URL+"/power/on", "")
	require.Equal(t, http.StatusOK, code)
	blocked(c)
	code, _ = call(t, "PATCH", srv.URL+"/knobs", `{"plugged":true}`)
	require.Equal(t, http.StatusOK, code)
	blocked(c)
	require.NoError(t, k.SetPlugged(true))
	blocked(c)

	code, _ = call(t, "GET", srv.URL+"/usb0/power/off", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = call(t, "GET", srv.URL+"/usb0/power/on", "")
	require.Equal(t, http.StatusOK, code)
	hid := ctaphid.NewClient(k.Connect())
	_, err := hid.Init(ctx)
	require.NoError(t, err)
	_, err = client.New(hid).GetPINToken(ctx, pin, ctap.PermGetAssertion, "example.com")
	require.NoError(t, err, "a real off→on cycle lifts the block")
}
