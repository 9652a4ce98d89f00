package probe

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/trace/winevent"
	"github.com/fidolab/fidolab/harness/vm"
	"github.com/stretchr/testify/require"
)

// probeOnHidraw runs in the guest against a fidolab key that the guest kernel knows as a USB HID
// device (UHID → hid-generic → /dev/hidrawN), power-cycled through its control API; its user
// touches 800 ms after being asked, on the wall clock, as a person does.
const probeOnHidraw = `
modprobe_all uhid hid-generic
fidolab serve --transport uhid --control 127.0.0.1:0 --user delay:800ms 2>/tmp/serve.log &
dev=$(wait_hidraw 1209 f1d0 10) || { cat /tmp/serve.log; die "no hidraw node"; }
for i in $(seq 100); do
	ctl=$(sed -n 's|.*control API on http://\([^/]*\)/.*|\1|p' /tmp/serve.log); [ -n "$ctl" ] && break; sleep 0.1
done
[ -n "$ctl" ] || die "no control API address"
key=hidraw:$dev,control=$ctl

# A user's key: a PIN and a discoverable credential, set with libfido2's tools.
fido2_roundtrip $dev 4321 || die "libfido2 set-up"
printf 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nexample.org\nbob\nYm9iYm9iYm9iYm9iYm9iYg==\n' > /tmp/rk_param
echo 4321 | fido2-cred -M -r -i /tmp/rk_param $dev > /dev/null || die "fido2-cred -M -r"
wget -q -O /tmp/before.json http://$ctl/state || die "state before"

# Not destructive: what would erase the key is skipped, the rest runs with the user's PIN.
fidolab probe --key $key --pin 4321 --no-catalog --ascii </dev/null > /tmp/nd.txt; rc=$?
cat /tmp/nd.txt
[ $rc = 0 ] || die "fidolab probe (not destructive): exit $rc"
wget -q -O /tmp/after.json http://$ctl/state || die "state after"
grep -o '"resident":{[^}]*}' /tmp/before.json > /tmp/rb; grep -o '"resident":{[^}]*}' /tmp/after.json > /tmp/ra
grep -o '"pin":{[^}]*}' /tmp/before.json >> /tmp/rb; grep -o '"pin":{[^}]*}' /tmp/after.json >> /tmp/ra
cmp /tmp/rb /tmp/ra || die "the probe without --destructive changed the key's PIN or credentials"
echo "not destructive: the key kept its PIN and credentials"

# Destructive, with a few catalog cases on the key, and the persona it mirrors.
fidolab probe --key $key --destructive --hid-slack 5s --ascii --report /tmp/probe.json --persona-out /tmp/mirror.yaml \
	--filter 're:^(sign-in-lock-screen|multi-account-order|manage-reset)$ windows:11-24H2' </dev/null > /tmp/d.txt; rc=$?
cat /tmp/d.txt
echo "destructive probe exit $rc"
echo "==report=="; cat /tmp/probe.json; echo "==end=="
echo "==persona=="; cat /tmp/mirror.yaml; echo "==end=="

# A Windows sign-in from an event log, replayed on the key after it is set up as the recorded one.
fidolab replay /logon.trace.jsonl --key $key --setup --destructive --pin 2468 </dev/null || die "fidolab replay"
echo "probe guest ok"
`

// TestVMProbe is issue 12's proof of the probe against a real kernel: a fidolab key exposed
// through UHID, reached over the guest's hidraw. Without --destructive the probe leaves the user's
// PIN and credentials alone; with it every check runs (the reset window on the wall clock, the key
// filled) and the catalog passes on the key; the persona the probe writes, probed in-process here,
// gives the same verdict check for check; and an imported Windows sign-in replays on the key.
func TestVMProbe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vm.Require(t)
	fidolab, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join("..", "trace", "winevent", "testdata", "logonui-signin.xml"))
	require.NoError(t, err)
	events, err := winevent.Parse(data)
	require.NoError(t, err)
	var tr bytes.Buffer
	_, err = winevent.Import(events, &tr, winevent.Options{Comment: "logonui-signin.xml"})
	require.NoError(t, err)

	res := vm.RunT(t, ctx, vm.Config{Script: probeOnHidraw, Timeout: 10 * time.Minute,
		Files: []vm.File{fidolab, {Path: "/logon.trace.jsonl", Data: tr.Bytes()}}})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "probe guest ok")
	require.Contains(t, res.Log, "not destructive: the key kept its PIN and credentials")
	require.Contains(t, res.Log, "SAME: every replayed step answered as the recorded key did")

	report, err := ReadJSON(strings.NewReader(between(t, res.Log, "==report==")))
	require.NoError(t, err)
	status := map[string]Status{}
	for _, c := range report.Checks {
		status[c.ID] = c.Status
		t.Logf("guest: %-5s %-18s %s", c.Status, c.ID, c.Observed)
	}
	for _, id := range []string{"ctaphid", "ctap2", "resident-keys", "pin-protocols", "make-credential",
		"hmac-secret", "reset", "set-pin", "accounts-order", "cred-protect-rk", "capacity"} {
		require.Equal(t, Pass, status[id], id)
	}
	// Keepalives are timed on the wall clock of a guest under software emulation: a host busy with
	// other builds can starve it past half a second. Then the probe rightly reports the silence,
	// and the comparison below leaves the timed checks out.
	timed := map[string]bool{"keepalive": true, "processing-time": true}
	if status["keepalive"] != Pass {
		t.Logf("the guest was starved: %v", report.Checks)
	} else {
		require.Equal(t, "compatible", report.Verdict)
		require.Contains(t, res.Log, "destructive probe exit 0")
	}
	require.Regexp(t, regexp.MustCompile(`USB 1209:f1d0`), res.Log)
	require.NotNil(t, report.Catalog)
	require.Equal(t, report.Catalog.Total, report.Catalog.Passed, "the catalog passes on the key through hidraw: %+v", report.Catalog)
	require.Positive(t, report.Catalog.Total)

	// The persona the probe wrote of the key behind hidraw, probed in-process, checks the same.
	mirror, err := persona.Parse([]byte(between(t, res.Log, "==persona==")), "mirror.yaml")
	require.NoError(t, err)
	require.Equal(t, uint16(0x1209), mirror.HID.VendorID)
	local, _, err := Probe(ctx, emulated(t, mirror), Options{Spec: "persona:mirror", Destructive: true, Fill: true})
	require.NoError(t, err)
	for _, c := range local.Checks {
		if timed[c.ID] && status[c.ID] != Pass {
			continue
		}
		require.Equal(t, status[c.ID], c.Status, "%s: in-process %s (%s)", c.ID, c.Status, c.Observed)
	}
}

// between returns the console lines between "MARK" and "==end==".
func between(t *testing.T, log, mark string) string {
	t.Helper()
	log = strings.ReplaceAll(log, "\r", "") // a serial console may end lines with CR LF
	_, rest, ok := strings.Cut(log, mark+"\n")
	require.True(t, ok, "no %s in the console", mark)
	body, _, ok := strings.Cut(rest, "==end==")
	require.True(t, ok, "no end of %s", mark)
	return body
}
