package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/stretchr/testify/require"
)

// startServeEnv starts `fidolab serve` with env added and returns it with the control API's base
// URL, read from what serve prints (the port is chosen by the system: --control 127.0.0.1:0).
func startServeEnv(t *testing.T, env []string, args ...string) (*served, string) {
	t.Helper()
	dir := t.TempDir()
	s := &served{sock: filepath.Join(dir, "key.sock"), stderr: &syncbuf.Buffer{}}
	s.cmd = exec.Command(fidolabBinary(t), append([]string{"serve", "--listen", "unix:" + s.sock}, args...)...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = s.stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	re := regexp.MustCompile(`control API on (http://[^/\s]+)/`)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.stderr.String(), "fidolab: serving") {
		require.True(t, time.Now().Before(deadline), "serve did not start: %s", s.stderr.String())
		time.Sleep(10 * time.Millisecond)
	}
	m := re.FindStringSubmatch(s.stderr.String())
	require.NotNil(t, m, s.stderr.String())
	return s, m[1]
}

func status(t *testing.T, method, url string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for h, v := range header {
		if h == "Host" {
			req.Host = v
		} else {
			req.Header.Set(h, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func tokenFile(t *testing.T, tok string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "control.token")
	require.NoError(t, os.WriteFile(p, []byte(tok+"\n"), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

// TestServeControlToken: --control-token (or FIDOLAB_CONTROL_TOKEN_FILE) makes the served control
// API ask every request for "Authorization: Bearer TOKEN" (issue 9 item 2).
func TestServeControlToken(t *testing.T) {
	t.Parallel()
	const tok = "served-token-0123456789abcdef"
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	for name, start := range map[string]func() (*served, string){
		"flag": func() (*served, string) {
			return startServeEnv(t, nil, "--control", "127.0.0.1:0", "--control-token", tokenFile(t, tok, 0o600))
		},
		"env": func() (*served, string) {
			return startServeEnv(t, []string{controlTokenEnv + "=" + tokenFile(t, tok, 0o600)}, "--control", "127.0.0.1:0")
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, base := start()
			require.Contains(t, s.stderr.String(), "Bearer token required")
			require.NotContains(t, s.stderr.String(), tok, "the token is never printed")
			require.Equal(t, http.StatusUnauthorized, status(t, "GET", base+"/state", nil))
			require.Equal(t, http.StatusUnauthorized, status(t, "GET", base+"/usb0/power/off", map[string]string{"Authorization": "Bearer nope"}))
			require.Equal(t, http.StatusOK, status(t, "GET", base+"/state", bearer))
			require.Equal(t, http.StatusOK, status(t, "GET", base+"/usb0/touch/on", bearer))
		})
	}
}

// TestServeControlRefusals: the served API refuses what a browser page could send (another
// Host, another port, a cross-site GET, a non-JSON body) and serve refuses a bad token setup
// before it creates anything.
func TestServeControlRefusals(t *testing.T) {
	t.Parallel()
	_, base := startServeEnv(t, nil, "--control", "127.0.0.1:0")
	require.Equal(t, http.StatusOK, status(t, "GET", base+"/usb0/touch/on", nil), "python-fido2's GET works")
	require.Equal(t, http.StatusForbidden, status(t, "GET", base+"/state", map[string]string{"Host": "rebound.example"}))
	require.Equal(t, http.StatusForbidden, status(t, "GET", base+"/state", map[string]string{"Host": "127.0.0.1:9"}))
	require.Equal(t, http.StatusForbidden, status(t, "GET", base+"/usb0/power/off", map[string]string{"Sec-Fetch-Site": "same-site"}))
	require.Equal(t, http.StatusUnsupportedMediaType, status(t, "POST", base+"/user", map[string]string{"Content-Type": "text/plain"}))

	dir := t.TempDir()
	state := filepath.Join(dir, "k.state")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--control-token", tokenFile(t, "served-token-0123456789", 0o600)}, 2, "--control-token needs --control"},
		{[]string{"--control", "127.0.0.1:0", "--control-token", tokenFile(t, "served-token-0123456789", 0o644)}, 1, "lets others read it"},
		{[]string{"--control", "127.0.0.1:0", "--control-token", tokenFile(t, "short", 0o600)}, 1, "at least 16"},
	} {
		cmd := exec.Command(fidolabBinary(t), append([]string{"serve", "--listen", "unix:" + filepath.Join(dir, "s"), "--state", state}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		require.Error(t, err)
		require.Equal(t, tc.code, cmd.ProcessState.ExitCode(), "%s", out)
		require.Contains(t, string(out), tc.msg)
		require.NoFileExists(t, state, "nothing is created before the options are checked")
	}
}

// TestServeControlUnixSocket: --control unix:PATH serves the API on a socket only its owner can
// use (mode 0600 from the start, package listener), never over another live one.
func TestServeControlUnixSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctlPath := filepath.Join(dir, "control.sock")
	s := &served{sock: filepath.Join(dir, "key.sock"), stderr: &syncbuf.Buffer{}}
	s.cmd = exec.Command(fidolabBinary(t), "serve", "--listen", "unix:"+s.sock, "--control", "unix:"+ctlPath,
		"--control-token", tokenFile(t, "unix-token-0123456789", 0o600))
	s.cmd.Stderr = s.stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.stderr.String(), "fidolab: serving") {
		require.True(t, time.Now().Before(deadline), "serve did not start: %s", s.stderr.String())
		time.Sleep(10 * time.Millisecond)
	}
	require.Contains(t, s.stderr.String(), "control API on unix:"+ctlPath)
	fi, err := os.Stat(ctlPath)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket, fi.Mode().Type())
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", ctlPath)
	}}}
	get := func(header map[string]string) int {
		req, err := http.NewRequest("GET", "http://localhost/usb0/touch/on", nil)
		require.NoError(t, err)
		for h, v := range header {
			req.Header.Set(h, v)
		}
		resp, err := cl.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, get(nil))
	require.Equal(t, http.StatusOK, get(map[string]string{"Authorization": "Bearer unix-token-0123456789"}))

	out, err := exec.Command(fidolabBinary(t), "serve", "--listen", "unix:"+filepath.Join(dir, "other.sock"), "--control", "unix:"+ctlPath).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "in use by another control API")
	require.Equal(t, http.StatusOK, get(map[string]string{"Authorization": "Bearer unix-token-0123456789"}), "the first key keeps its API")
}
