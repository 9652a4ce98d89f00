package pcapng_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/harness/trace/pcapng"
	"github.com/stretchr/testify/require"
)

const fixture = "../testdata/session.trace.jsonl"

// reportsOf returns the hex of every report in a trace, redacted bytes as zeros.
func reportsOf(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := trace.NewReader(f)
	require.NoError(t, err)
	var out []string
	for rec, err := range r.All() {
		require.NoError(t, err)
		if rec.Type == trace.TypeReport {
			out = append(out, hex.EncodeToString(rec.Hex.B))
		}
	}
	return out
}

func export(t *testing.T, path string) (string, pcapng.Stats) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := trace.NewReader(f)
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "out.pcapng")
	w, err := os.Create(out)
	require.NoError(t, err)
	st, err := pcapng.Export(w, r, pcapng.Options{})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return out, st
}

// tshark finds tshark, failing under CI when it is missing (.ci/deps installs it).
func tshark(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tshark is missing under CI: .ci/deps must install the tshark package")
		}
		t.Skip("tshark not installed (apt-get install tshark); CI runs this test")
	}
	return p
}

// TestTsharkReadsTheExport is the proof that the export is what Wireshark expects: tshark opens
// it as USB, recognises the HID interface from the enumeration, and its usbhid.data field
// carries exactly the trace's reports, in order.
func TestTsharkReadsTheExport(t *testing.T) {
	t.Parallel()
	bin := tshark(t)
	out, st := export(t, fixture)
	want := reportsOf(t, fixture)
	require.Equal(t, len(want), st.Reports)
	require.Equal(t, 6+len(want), st.Packets, "3 GET_DESCRIPTOR transfers (2 packets each) + one packet per report")

	cmd := exec.Command(bin, "-r", out, "-T", "fields", "-e", "frame.protocols", "-e", "usbhid.data", "-e", "usb.endpoint_address")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user profile
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "tshark: %s", stderr.String())
	lines := strings.Split(strings.TrimRight(string(stdout), "\n"), "\n")
	require.Len(t, lines, st.Packets, "tshark counts every packet")
	var got []string
	for _, l := range lines[6:] {
		f := strings.Split(l, "\t")
		require.Len(t, f, 3, "line %q", l)
		require.Contains(t, f[0], "usb", "frame.protocols %q", f[0])
		got = append(got, strings.ReplaceAll(f[1], ":", ""))
	}
	require.Equal(t, want, got, "tshark's HID payloads are the trace's reports")
	// The HID report descriptor was dissected: the FIDO usage page is known to tshark.
	cmd = exec.Command(bin, "-r", out, "-V", "-Y", "frame.number == 6")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	v, err := cmd.Output()
	require.NoError(t, err)
	require.Contains(t, strings.ToLower(string(v)), "fido")
}

// TestExportLayout checks the file's blocks without tshark: the section header, the interface
// with link type 220, then one block per packet, each usbmon header saying what it carries.
func TestExportLayout(t *testing.T) {
	t.Parallel()
	out, st := export(t, fixture)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	le := binary.LittleEndian
	var blocks []uint32
	var epbs [][]byte
	for off := 0; off < len(b); {
		require.GreaterOrEqual(t, len(b)-off, 12)
		typ, n := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		require.Zero(t, n%4, "block lengths are multiples of 4")
		require.Equal(t, uint32(n), le.Uint32(b[off+n-4:]), "trailing length of block at %d", off)
		blocks = append(blocks, typ)
		if typ == 6 {
			capLen := int(le.Uint32(b[off+20:]))
			epbs = append(epbs, b[off+28:off+28+capLen])
		}
		if typ == 1 {
			require.Equal(t, uint16(pcapng.LinkTypeUSBLinuxMmapped), le.Uint16(b[off+8:]))
		}
		off += n
	}
	require.Equal(t, uint32(0x0A0D0D0A), blocks[0])
	require.Equal(t, uint32(1), blocks[1])
	require.Len(t, epbs, st.Packets)
	first := epbs[6] // the first report: the host's INIT on the broadcast channel
	require.Equal(t, byte('S'), first[8])
	require.Equal(t, byte(1), first[9], "interrupt transfer")
	require.Equal(t, byte(0x01), first[10], "OUT endpoint")
	require.Equal(t, uint32(64), le.Uint32(first[36:]))
	require.Equal(t, "ffffffff86", hex.EncodeToString(first[64:69]))
	answer := epbs[7]
	require.Equal(t, byte('C'), answer[8])
	require.Equal(t, byte(0x81), answer[10], "IN endpoint")
}

// TestDissectorNamesCTAP loads the Lua dissector into tshark: the packet list then names the
// CTAP2 commands the host sent and the statuses the key answered, as the trace does.
func TestDissectorNamesCTAP(t *testing.T) {
	t.Parallel()
	bin := tshark(t)
	out, _ := export(t, fixture)
	lua := filepath.Join(t.TempDir(), "fidolab-ctaphid.lua")
	require.NoError(t, os.WriteFile(lua, pcapng.Dissector(), 0o644))
	cmd := exec.Command(bin, "-X", "lua_script:"+lua, "-r", out, "-T", "fields",
		"-e", "fidolab.ctaphid.cmd", "-e", "fidolab.ctap.command", "-e", "fidolab.ctap.status")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "tshark: %s", stderr.String())
	s := string(stdout)
	require.NotContains(t, stderr.String(), "Lua: Error", "the script loads")
	for _, want := range []string{"authenticatorGetAssertion", "authenticatorClientPIN", "authenticatorMakeCredential",
		"CTAP2_OK", "CTAP2_ERR_PIN_INVALID", "0x86", "0x90"} {
		require.Contains(t, s, want)
	}
}
