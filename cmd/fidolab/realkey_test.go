package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/transport/hidraw"
	"github.com/stretchr/testify/require"
)

// controlAddr reads the control API's address from serve's stderr (it was asked for port 0).
func (s *served) controlAddr(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`control API on http://([0-9.]+:[0-9]+)/`).FindStringSubmatch(s.stderr.String())
	require.NotNil(t, m, "serve printed no control address: %s", s.stderr.String())
	return m[1]
}

// keyState is the served key's /state, as the control API reports it.
func keyState(t *testing.T, addr string) (pinSet bool, rps []string) {
	t.Helper()
	code, body := httpGet(t, "http://"+addr+"/state")
	require.Equal(t, 200, code, body)
	var st struct {
		PIN         struct{ Set bool }
		Credentials []struct{ RPID string }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	for _, c := range st.Credentials {
		rps = append(rps, c.RPID)
	}
	return st.PIN.Set, rps
}

// TestRunKeepsAServedKeysCredentials is issue 9 item 16 as reported: `fidolab run --key socket:…`
// against a served key holding a user's PIN and an example.com credential. Without --destructive
// the run is refused with what would be erased, and the key keeps both; with it, the key is reset.
func TestRunKeepsAServedKeysCredentials(t *testing.T) {
	s := startServe(t, "--control", "127.0.0.1:0")
	addr := s.controlAddr(t)
	c := s.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.SetPIN(ctx, "135790"))
	tok, err := c.GetPINToken(ctx, "135790", ctap.PermMakeCredential, "example.com")
	require.NoError(t, err)
	req := mkReq("example.com", "alice")
	req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(req.ClientDataHash), tok.ProtocolParam()
	_, err = c.MakeCredential(ctx, req)
	require.NoError(t, err)

	key := "socket:unix:" + s.sock + ",control=" + addr
	report := filepath.Join(t.TempDir(), "r.xml")
	code, out, errOut := runCLI(t, "run", "--quiet", "--ascii", "--key", key, "--filter", "re:^sign-in-lock-screen$",
		"--report", report)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "Skipped (")
	require.Contains(t, out, "a PIN is set (8 retries left)")
	require.Contains(t, out, "--destructive not given")
	pinSet, rps := keyState(t, addr)
	require.True(t, pinSet, "the PIN is still set")
	require.Equal(t, []string{"example.com"}, rps, "the credential is still there")
	x, err := os.ReadFile(report)
	require.NoError(t, err)
	require.Contains(t, string(x), `<skipped message="the key is not empty`)

	// FIDOLAB_KEY_PIN lets the refusal name every site.
	t.Setenv("FIDOLAB_KEY_PIN", "135790")
	code, out, _ = runCLI(t, "run", "--quiet", "--ascii", "--key", key, "--filter", "re:^sign-in-lock-screen$")
	require.Equal(t, 1, code)
	require.Contains(t, out, "1 discoverable credential(s): example.com")
	t.Setenv("FIDOLAB_KEY_PIN", "")

	code, out, errOut = runCLI(t, "run", "--quiet", "--ascii", "--key", key, "--destructive", "--filter", "re:^sign-in-lock-screen$")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "PASS")
	_, rps = keyState(t, addr)
	require.NotContains(t, rps, "example.com", "--destructive erased the key")
}

func TestRunKeyUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--key", "socket:/tmp/nothing.sock"}, "add ,control=HOST:PORT"},
		{[]string{"run", "--key", "usb:1050:0407"}, "-tags gousb"},
		{[]string{"run", "--key", "hidraw:/dev/hidraw0,colour=red"}, `unknown option "colour=red"`},
		{[]string{"run", "--destructive"}, "--destructive is about a --key"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, tt.args...)
		require.Equal(t, 2, code, "%v: %s", tt.args, errOut)
		require.Contains(t, errOut, tt.want, "%v", tt.args)
		require.Equal(t, 1, strings.Count(errOut, "fidolab run:"), "one message, not one per case")
	}
}

// TestDevices lists the FIDO keys of a fake sysfs, as a person and as a machine reads them.
func TestDevices(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	add := func(name, uevent, rdescHex string) {
		hid := filepath.Join(sys, "devices", "virtual", "misc", "uhid", "0003:1209:F1D0."+name)
		node := filepath.Join(hid, "hidraw", name)
		require.NoError(t, os.MkdirAll(node, 0o755))
		require.NoError(t, os.Symlink("../../../"+filepath.Base(hid), filepath.Join(node, "device")))
		require.NoError(t, os.WriteFile(filepath.Join(hid, "uevent"), []byte(uevent), 0o644))
		rd := make([]byte, len(rdescHex)/2)
		for i := range rd {
			var b byte
			for _, c := range rdescHex[2*i : 2*i+2] {
				b = b<<4 | byte(strings.IndexRune("0123456789abcdef", c))
			}
			rd[i] = b
		}
		require.NoError(t, os.WriteFile(filepath.Join(hid, "report_descriptor"), rd, 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(sys, "class", "hidraw"), 0o755))
		require.NoError(t, os.Symlink(node, filepath.Join(sys, "class", "hidraw", name)))
		require.NoError(t, os.MkdirAll(dev, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dev, name), nil, 0o600))
	}
	add("hidraw0", "HID_ID=0003:00001209:0000F1D0\nHID_NAME=fidolab \x1b[31mkey\nHID_UNIQ=FL-1\n",
		"06d0f10901a1010920150026ff007508954081020921150026ff00750895409102c0")
	add("hidraw1", "HID_ID=0003:0000046D:0000C31C\nHID_NAME=a keyboard\n",
		"05010906a101050719e029e715002501750195088102c0")
	hidrawEnum = hidraw.Enumerator{Sys: sys, Dev: dev}
	t.Cleanup(func() { hidrawEnum = hidraw.Enumerator{} })

	code, out, _ := runCLI(t, "devices")
	require.Equal(t, 0, code)
	require.Contains(t, out, "hidraw:"+filepath.Join(dev, "hidraw0"))
	require.Contains(t, out, "1209:f1d0")
	require.Contains(t, out, "fidolab ?[31mkey", "a device's control characters never reach the terminal")
	require.Contains(t, out, "FL-1")
	require.NotContains(t, out, "keyboard")

	code, out, _ = runCLI(t, "devices", "--json", "--all")
	require.Equal(t, 0, code)
	var rows []deviceRow
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 2)
	require.Equal(t, "hidraw", rows[0].Transport)
	require.Equal(t, "f1d0", rows[0].ProductID)
	require.True(t, rows[0].FIDO)
	require.False(t, rows[1].FIDO)

	hidrawEnum = hidraw.Enumerator{Sys: t.TempDir()}
	code, out, _ = runCLI(t, "devices", "--json")
	require.Equal(t, 0, code)
	require.Equal(t, "[]\n", out)
	code, out, _ = runCLI(t, "devices")
	require.Equal(t, 0, code)
	require.Contains(t, out, "no FIDO key found")
	code, _, _ = runCLI(t, "devices", "extra")
	require.Equal(t, 2, code)
}
