package main

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/fidolab/fidolab/transport/usbip/usbiptest"
	"github.com/fidolab/fidolab/transport/usbredir/usbredirtest"
	"github.com/stretchr/testify/require"
)

// startServeArgs runs `fidolab serve ARGS` and waits until it says where it serves.
func startServeArgs(t *testing.T, args ...string) *syncbuf.Buffer {
	t.Helper()
	stderr := &syncbuf.Buffer{}
	cmd := exec.Command(fidolabBinary(t), append([]string{"serve"}, args...)...)
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "fidolab: serving") },
		10*time.Second, 10*time.Millisecond, "serve did not start")
	return stderr
}

var (
	controlAddr = regexp.MustCompile(`control API on http://([0-9.:]+)/`)
	usbipAddr   = regexp.MustCompile(`USB/IP tcp:([0-9.:]+), bus ID (\S+)`)
)

func post(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
}

func TestServeUSBRedirWithPowerControl(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "redir.sock")
	out := startServeArgs(t, "--transport", "usbredir", "--listen", "unix:"+sock, "--control", "127.0.0.1:0")
	require.Contains(t, out.String(), "on usb-redir unix:"+sock)
	ctl := controlAddr.FindStringSubmatch(out.String())
	require.NotNil(t, ctl, out.String())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := usbredirtest.Dial(ctx, "unix", sock)
	require.NoError(t, err)
	defer g.Close()
	_, err = ctaphid.NewClient(g).Init(ctx)
	require.NoError(t, err)
	<-g.Events() // connected

	post(t, "http://"+ctl[1]+"/power/off")
	e := <-g.Events()
	require.False(t, e.Connected, "unplug through the control API is a device_disconnect")
	post(t, "http://"+ctl[1]+"/power/on")
	e = <-g.Events()
	require.True(t, e.Connected, "replug is a device_connect")
}

func TestServeUSBIP(t *testing.T) {
	t.Parallel()
	out := startServeArgs(t, "--transport", "usbip", "--listen", "tcp:127.0.0.1:0", "--busid", "2-3")
	m := usbipAddr.FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	require.Equal(t, "2-3", m[2])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	devs, err := usbiptest.List(ctx, "tcp", m[1])
	require.NoError(t, err)
	require.Len(t, devs, 1)
	require.Equal(t, "2-3", devs[0].BusID)
	c, err := usbiptest.Dial(ctx, "tcp", m[1], "2-3")
	require.NoError(t, err)
	defer c.Close()
	_, err = ctaphid.NewClient(c).Init(ctx)
	require.NoError(t, err)
}

func TestServeListenChecks(t *testing.T) {
	t.Parallel()
	bin := fidolabBinary(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--transport", "usbip", "--listen", "tcp:0.0.0.0:0"}, 2, "unless --allow-remote is given"},
		{[]string{"--transport", "usbredir", "--listen", "tcp:192.0.2.1:1"}, 2, "not a loopback address"},
		{[]string{"--transport", "usbip", "--listen", "unix:/tmp/x"}, 2, "usbip clients connect over TCP"},
		{[]string{"--transport", "usbip", "--busid", "bus"}, 2, "want BUS-PORT"},
		{[]string{"--transport", "carrier-pigeon"}, 2, "want one of"},
		{[]string{"--transport", "usbredir", "--listen", "udp:1"}, 2, "is not unix:PATH or tcp:HOST:PORT"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, append([]string{"serve"}, c.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%v: %s", c.args, out)
		require.Equal(t, c.code, ee.ExitCode(), "%v: %s", c.args, out)
		require.Contains(t, string(out), c.want, c.args)
	}
	// With --allow-remote it listens, and says so loudly.
	out := startServeArgs(t, "--transport", "usbip", "--listen", "tcp:0.0.0.0:0", "--allow-remote")
	require.Contains(t, out.String(), "WARNING: --allow-remote: the key on tcp:")
}
