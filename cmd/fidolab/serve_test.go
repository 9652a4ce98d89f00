package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// fidolabBinary builds the real command once per test run.
func fidolabBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fidolab-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fidolab")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// served is one running `fidolab serve` process.
type served struct {
	cmd    *exec.Cmd
	sock   string
	stderr *syncbuf.Buffer
}

func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	dir := t.TempDir()
	s := &served{sock: filepath.Join(dir, "key.sock"), stderr: &syncbuf.Buffer{}}
	full := append([]string{"serve", "--listen", "unix:" + s.sock}, args...)
	s.cmd = exec.Command(fidolabBinary(t), full...)
	s.cmd.Stderr = s.stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	waitServing(t, s)
	return s
}

// waitServing waits for serve's "serving" line, printed once it listens.
func waitServing(t *testing.T, s *served) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.stderr.String(), "fidolab: serving") {
		require.True(t, time.Now().Before(deadline), "serve did not start: %s", s.stderr.String())
		time.Sleep(10 * time.Millisecond)
	}
}

// connect opens a CTAP client on the served key's socket.
func (s *served) connect(t *testing.T) *client.Client {
	t.Helper()
	conn, err := socket.Dial("unix:" + s.sock)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	hid := ctaphid.NewClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	return client.New(hid)
}

var controlLine = regexp.MustCompile(`fidolab: control API on (http://[^/\s]+)/`)

// controlURL is the control API's base URL as serve printed it (it listens on a free port).
func (s *served) controlURL(t *testing.T) string {
	t.Helper()
	m := controlLine.FindStringSubmatch(s.stderr.String())
	require.NotNil(t, m, "serve printed no control API address: %s", s.stderr.String())
	return m[1]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeSocketAndControlAPI(t *testing.T) {
	state := filepath.Join(t.TempDir(), "key.state")
	s := startServe(t, "--state", state, "--control", "127.0.0.1:0")
	c := s.connect(t)
	ctx := context.Background()

	info, err := c.GetInfo(ctx)
	require.NoError(t, err)
	require.True(t, info.HasVersion(ctap.VersionFIDO21))

	fi, err := os.Stat(state)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "state files are private")

	base := s.controlURL(t)
	code, body := httpGet(t, base+"/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "fidolab")

	// touch/off: the finger is lifted, so a request needing presence waits until touch/on.
	code, _ = httpGet(t, base+"/usb6/touch/off")
	require.Equal(t, http.StatusOK, code)
	done := make(chan error, 1)
	go func() {
		_, err := c.MakeCredential(ctx, mkReq("example.com", "alice"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("makeCredential finished without a touch: %v", err)
	case <-time.After(400 * time.Millisecond):
	}
	code, _ = httpGet(t, base+"/usb6/touch/on")
	require.Equal(t, http.StatusOK, code)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("touch/on did not release the waiting request")
	}

	code, body = httpGet(t, base+"/state")
	require.Equal(t, http.StatusOK, code)
	var st struct {
		Persona  string              `json:"persona"`
		Resident struct{ Count int } `json:"resident"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Equal(t, "default", st.Persona)
	require.Equal(t, 1, st.Resident.Count)

	// power off/on: the old channel is gone, a new one works, and the reset window restarts.
	code, _ = httpGet(t, base+"/usb6/power/off")
	require.Equal(t, http.StatusOK, code)
	code, _ = httpGet(t, base+"/usb6/power/on")
	require.Equal(t, http.StatusOK, code)
	_, err = c.GetInfo(ctx)
	require.ErrorIs(t, err, ctaphid.ErrInvalidChannel, "channels do not survive an unplug")
	c2 := s.connect(t)
	require.NoError(t, c2.Reset(ctx), "replug reopens the 10 s reset window")
	code, _ = httpGet(t, base+"/usb0/power/sideways")
	require.Equal(t, http.StatusNotFound, code)
}

func TestControlRefusesNonLoopback(t *testing.T) {
	out, err := exec.Command(fidolabBinary(t), "serve", "--listen", "unix:"+filepath.Join(t.TempDir(), "s"), "--control", "0.0.0.0:0").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "loopback")
}

func TestServeListenIsLoopbackOnlyUnlessAllowed(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"tcp:0.0.0.0:0", "tcp::0", "tcp:[::]:0"} {
		state := filepath.Join(t.TempDir(), "key.state")
		cmd := exec.Command(fidolabBinary(t), "serve", "--listen", addr, "--state", state)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s: %s", addr, out)
		require.Equal(t, 2, ee.ExitCode(), "%s: a refused address is a usage error", addr)
		require.Contains(t, string(out), "not a loopback address", addr)
		require.Contains(t, string(out), "--allow-remote", addr)
		_, err = os.Stat(state)
		require.True(t, os.IsNotExist(err), "a refused serve makes no state file")
	}

	s := &served{stderr: &syncbuf.Buffer{}}
	s.cmd = exec.Command(fidolabBinary(t), "serve", "--listen", "tcp:0.0.0.0:0", "--allow-remote")
	s.cmd.Stderr = s.stderr
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	waitServing(t, s)
	require.Contains(t, s.stderr.String(), "WARNING: --allow-remote")
}

// A second serve on a live key's socket must leave it alone and say so.
func TestServeDoesNotTakeOverALiveSocket(t *testing.T) {
	t.Parallel()
	first := startServe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a takeover would serve on
	defer cancel()
	out, err := exec.CommandContext(ctx, fidolabBinary(t), "serve", "--listen", "unix:"+first.sock).CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, string(out), first.sock+" is in use by another key")
	c := first.connect(t)
	_, err = c.GetInfo(context.Background())
	require.NoError(t, err, "the first key still answers on its socket")
}

func mkReq(rpID, userName string) *ctap.MakeCredentialRequest {
	alg := int64(-7)
	return &ctap.MakeCredentialRequest{
		ClientDataHash:   make([]byte, 32),
		RP:               &ctap.RPEntity{ID: rpID},
		User:             &ctap.UserEntity{ID: []byte(userName), Name: userName},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
		Options:          &ctap.Options{RK: ctap.Bool(true)},
	}
}
