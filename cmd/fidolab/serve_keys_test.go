package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/fidolab/fidolab/transport/usbredir/usbredirtest"
	"github.com/stretchr/testify/require"
)

// TestServeKeys runs the real binary with --keys 3: one socket, state file and control path per
// key, /state listing every key, and key list reading the state directory afterwards.
func TestServeKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sockDir, stateDir := filepath.Join(dir, "sock")+"/", filepath.Join(dir, "state")+"/"
	s := &served{stderr: &syncbuf.Buffer{}}
	s.cmd = exec.Command(fidolabBinary(t), "serve", "--keys", "3", "--listen", "unix:"+sockDir,
		"--state", stateDir, "--persona", "default", "--control", "127.0.0.1:0")
	s.cmd.Stderr = s.stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	waitServing(t, s)
	require.Contains(t, s.stderr.String(), "serving 3 keys")

	ctx := context.Background()
	dial := func(n string) *client.Client {
		t.Helper()
		conn, err := socket.Dial("unix:" + filepath.Join(sockDir, n+".sock"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return client.New(ctaphid.NewClient(conn))
	}
	for _, n := range []string{"usb1", "usb2", "usb3"} {
		fi, err := os.Stat(filepath.Join(sockDir, n+".sock"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "each socket is private")
		fi, err = os.Stat(filepath.Join(stateDir, n+".state"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	k2 := dial("usb2")
	_, err := k2.MakeCredential(ctx, mkReq("example.com", "bob"))
	require.NoError(t, err)
	_, err = dial("usb1").GetAssertion(ctx, &ctap.GetAssertionRequest{RPID: "example.com", ClientDataHash: make([]byte, 32)})
	require.ErrorIs(t, err, ctap.ErrNoCredentials, "key 1 does not have key 2's credential")

	base := s.controlURL(t)
	code, body := httpGet(t, base+"/state")
	require.Equal(t, http.StatusOK, code)
	var st struct {
		Keys []struct {
			Key      string              `json:"key"`
			Endpoint string              `json:"endpoint"`
			Resident struct{ Count int } `json:"resident"`
		} `json:"keys"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Len(t, st.Keys, 3)
	require.Equal(t, "usb2", st.Keys[1].Key)
	require.Equal(t, "unix:"+filepath.Join(sockDir, "usb2.sock"), st.Keys[1].Endpoint)
	require.Equal(t, 1, st.Keys[1].Resident.Count)
	require.Equal(t, 0, st.Keys[0].Resident.Count)

	// Key 3 unplugged through its control path; the others keep answering.
	code, _ = httpGet(t, base+"/usb3/power/off")
	require.Equal(t, http.StatusOK, code)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = dial("usb3").GetInfo(short)
	cancel()
	require.Error(t, err, "an unplugged key ignores its host")
	_, err = k2.GetInfo(ctx)
	require.NoError(t, err)

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, s.cmd.Wait())
	for _, n := range []string{"usb1", "usb2", "usb3"} {
		_, err := os.Lstat(filepath.Join(sockDir, n+".sock"))
		require.ErrorIs(t, err, os.ErrNotExist, "sockets removed on exit")
	}

	out, err := exec.Command(fidolabBinary(t), "key", "list", "--state", stateDir, "--json").CombinedOutput()
	require.NoError(t, err, "%s", out)
	var list []struct {
		Key         string `json:"key"`
		StatePath   string `json:"statePath"`
		Credentials []struct {
			RPID     string `json:"rpId"`
			UserName string `json:"userName"`
		} `json:"credentials"`
	}
	require.NoError(t, json.Unmarshal(out, &list))
	require.Len(t, list, 3)
	require.Equal(t, "usb2", list[1].Key)
	require.Len(t, list[1].Credentials, 1)
	require.Equal(t, "bob", list[1].Credentials[0].UserName)
	require.Empty(t, list[0].Credentials)

	out, err = exec.Command(fidolabBinary(t), "key", "list", "--state", stateDir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "usb2 (")
	require.Contains(t, string(out), "bob")
	out, err = exec.Command(fidolabBinary(t), "key", "reset", "--state", stateDir, "--yes").CombinedOutput()
	require.Error(t, err, "reset works on one key at a time")
	require.Equal(t, 2, procExit(err), "%s", out)
}

func TestServeKeysUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--keys", "2", "--listen", "unix:" + filepath.Join(dir, "one.sock")}, "give a directory"},
		{[]string{"--keys", "-3", "--listen", "unix:" + dir + "/"}, "want 1…"},
		{[]string{"--keys", "2", "--transport", "usbip"}, "serves one key per process"},
		{[]string{"--keys", "2", "--listen", "tcp:0.0.0.0:0"}, "loopback"},
	} {
		out, err := exec.Command(fidolabBinary(t), append([]string{"serve"}, tc.args...)...).CombinedOutput()
		require.Error(t, err, "%v", tc.args)
		require.Equal(t, 2, procExit(err), "%v: %s", tc.args, out)
		require.Contains(t, string(out), tc.want, "%v", tc.args)
	}
	state := filepath.Join(dir, "file.state")
	require.NoError(t, os.WriteFile(state, nil, 0o600))
	out, err := exec.Command(fidolabBinary(t), "serve", "--keys", "2", "--listen", "unix:"+dir+"/s/", "--state", state).CombinedOutput()
	require.Equal(t, 2, procExit(err), "%s", out)
	require.True(t, strings.Contains(string(out), "give a directory"), "%s", out)
}

// procExit is a finished command's exit status (0 for a nil error).
func procExit(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestServeKeysControlGuard: the control API of serve --keys N has the one-key API's guard on
// every key's path: --control-token is required, and a Host with another port (DNS rebinding)
// or a cross-site GET is refused.
func TestServeKeysControlGuard(t *testing.T) {
	t.Parallel()
	const tok = "keys-token-0123456789abcdef"
	dir := t.TempDir()
	s := &served{stderr: &syncbuf.Buffer{}}
	s.cmd = exec.Command(fidolabBinary(t), "serve", "--keys", "2", "--listen", "unix:"+filepath.Join(dir, "sock")+"/",
		"--control", "127.0.0.1:0", "--control-token", tokenFile(t, tok, 0o600))
	s.cmd.Stderr = s.stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	waitServing(t, s)
	require.Contains(t, s.stderr.String(), "Bearer token required")
	base := s.controlURL(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	for _, tc := range []struct {
		method, path string
		header       map[string]string
		want         int
	}{
		{"GET", "/state", nil, http.StatusUnauthorized},
		{"GET", "/usb2/power/off", nil, http.StatusUnauthorized},
		{"GET", "/state", bearer, http.StatusOK},
		{"GET", "/usb2/touch/on", bearer, http.StatusOK},
		{"GET", "/state", map[string]string{"Authorization": "Bearer " + tok, "Host": "127.0.0.1:9"}, http.StatusForbidden},
		{"GET", "/usb1/power/off", map[string]string{"Authorization": "Bearer " + tok, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"POST", "/usb1/user", map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
	} {
		require.Equal(t, tc.want, status(t, tc.method, base+tc.path, tc.header), "%s %s %v", tc.method, tc.path, tc.header)
	}
}

// TestServeKeysUSBRedir: --keys N with the usbredir transport gives each key a usb-redir socket
// of its own (DIR/usbN.sock), each a separate key behind its own emulated USB device.
func TestServeKeysUSBRedir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sockDir := filepath.Join(dir, "redir") + "/"
	s := &served{stderr: &syncbuf.Buffer{}}
	s.cmd = exec.Command(fidolabBinary(t), "serve", "--keys", "2", "--transport", "usbredir", "--listen", "unix:"+sockDir,
		"--state", filepath.Join(dir, "state")+"/")
	s.cmd.Stderr = s.stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	waitServing(t, s)
	require.Contains(t, s.stderr.String(), "serving 2 keys")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mk := mkReq("example.com", "carol")
	for i, n := range []string{"usb1", "usb2"} {
		path := filepath.Join(sockDir, n+".sock")
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		g, err := usbredirtest.Dial(ctx, "unix", path)
		require.NoError(t, err)
		hid := ctaphid.NewClient(g)
		_, err = hid.Init(ctx)
		require.NoError(t, err)
		c := client.New(hid)
		if i == 1 {
			_, err = c.MakeCredential(ctx, mk)
			require.NoError(t, err)
		}
		_, err = c.GetAssertion(ctx, &ctap.GetAssertionRequest{RPID: "example.com", ClientDataHash: make([]byte, 32)})
		if i == 0 {
			require.ErrorIs(t, err, ctap.ErrNoCredentials, "key 1 is not key 2")
		} else {
			require.NoError(t, err)
		}
		require.NoError(t, g.Close())
	}
}
