package runner

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/fidolab/fidolab/harness/vm"
	"github.com/stretchr/testify/require"
)

// catalogOnHidraw runs in the guest: a fidolab key served through UHID, the whole catalog run on
// it through the guest kernel's hidraw with the key power-cycled by its control API, compared with
// the same catalog in-process; then the key — left with the last case's PIN and accounts — is
// refused without --destructive, with what would be erased, and keeps what it holds.
const catalogOnHidraw = `
modprobe_all uhid hid-generic
fidolab serve --transport uhid --control 127.0.0.1:0 2>/tmp/serve.log &
dev=$(wait_hidraw 1209 f1d0 10) || { cat /tmp/serve.log; die "no hidraw node"; }
for i in $(seq 100); do
	ctl=$(sed -n 's|.*control API on http://\([^/]*\)/.*|\1|p' /tmp/serve.log); [ -n "$ctl" ] && break; sleep 0.1
done
[ -n "$ctl" ] || die "no control API address"
key=hidraw:$dev,control=$ctl

# The guest runs under TCG, many times slower than the hardware whose half-second silence limit
# the Windows model applies in wall time: --hid-slack gives the key and host that room.
fidolab run --ascii --quiet --key $key --destructive --hid-slack 5s --report /tmp/run.json > /tmp/run.txt; rc=$?
tail -4 /tmp/run.txt
[ $rc = 0 ] || { cat /tmp/run.txt; die "fidolab run --key $key --destructive: exit $rc"; }
samerun /tmp/run.json || die "outcomes differ from in-process"

wget -q -O /tmp/before.json http://$ctl/state || die "state before"
# Nobody at a terminal (stdin is /dev/null): refused, with what would be erased.
fidolab run --ascii --quiet --key $key --filter 're:^sign-in-lock-screen$' </dev/null > /tmp/refused.txt; rc=$?
cat /tmp/refused.txt
[ $rc = 1 ] || die "a key with a PIN was not refused without --destructive (exit $rc)"
wget -q -O /tmp/after.json http://$ctl/state || die "state after"
cmp /tmp/before.json /tmp/after.json || die "the refused run changed the key"
echo "catalog on hidraw ok"
`

// TestVMHidrawCatalog is issue 10's hidraw proof: `fidolab run --key hidraw:/dev/hidrawN,control=…
// --destructive` passes the catalog through a real kernel, with the same outcomes as in-process,
// and the same key holding a PIN is refused without --destructive (issue 9 item 16).
func TestVMHidrawCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vm.Require(t)
	fidolab, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
	require.NoError(t, err)
	same, err := vm.Binary(ctx, "github.com/fidolab/fidolab/scenarios/runner/testdata/samerun")
	require.NoError(t, err)
	res := vm.RunT(t, ctx, vm.Config{Script: catalogOnHidraw, Files: []vm.File{fidolab, same}, Timeout: 12 * time.Minute})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "catalog on hidraw ok")
	m := regexp.MustCompile(`PASS  (\d+) cases: \d+ passed, 0 failed, 0 key-incompatible, 0 errors in (\S+)`).FindStringSubmatch(res.Log)
	require.NotNil(t, m, "the catalog passed")
	t.Logf("guest: %s cases over hidraw in %s", m[1], m[2])
	require.Regexp(t, `same outcomes: \d+ cases`, res.Log)
	require.Contains(t, res.Log, "a PIN is set (8 retries left)")
	require.Contains(t, res.Log, "login.microsoft.com")
	require.Contains(t, res.Log, "--destructive not given")
}
