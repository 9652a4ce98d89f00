package winevent_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/harness/trace/winevent"
	"github.com/stretchr/testify/require"
)

func fixedNow() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) }

// importFile parses and imports a fixture and reads the trace back.
func importFile(t *testing.T, path string, o winevent.Options) (winevent.Stats, []byte, []*trace.Record) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	events, err := winevent.Parse(data)
	require.NoError(t, err)
	var out bytes.Buffer
	o.Now = fixedNow
	st, err := winevent.Import(events, &out, o)
	require.NoError(t, err)
	r, err := trace.NewReader(bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	var recs []*trace.Record
	for rec, err := range r.All() {
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	return st, out.Bytes(), recs
}

func ofType(recs []*trace.Record, typ string) []*trace.Record {
	var out []*trace.Record
	for _, r := range recs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func summary(x *trace.Record) string {
	s := x.Request.Command
	if x.Response != nil {
		s += " → " + x.Response.Status
	}
	return s
}

// requestSecrets decodes the fixture's own requests to find the secrets they carry.
func requestSecrets(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	events, err := winevent.Parse(data)
	require.NoError(t, err)
	var out [][]byte
	for _, e := range events {
		for _, name := range []string{"Request", "Response"} {
			v, ok := e.Get(name)
			if !ok {
				continue
			}
			b, err := hex.DecodeString(v)
			if err != nil || len(b) < 2 {
				continue
			}
			switch ctap.Command(b[0]) {
			case ctap.CmdClientPIN:
				var q ctap.ClientPINRequest
				if ctap.Unmarshal(b[1:], &q) == nil {
					out = append(out, q.PinHashEnc, q.PinUvAuthParam, q.NewPinEnc)
				}
			case ctap.CmdGetAssertion:
				var q ctap.GetAssertionRequest
				if ctap.Unmarshal(b[1:], &q) == nil {
					out = append(out, q.PinUvAuthParam)
					if q.Extensions != nil && q.Extensions.HMACSecret != nil {
						out = append(out, q.Extensions.HMACSecret.SaltEnc, q.Extensions.HMACSecret.SaltAuth)
					}
				}
			case ctap.CmdMakeCredential:
				var q ctap.MakeCredentialRequest
				if ctap.Unmarshal(b[1:], &q) == nil {
					out = append(out, q.PinUvAuthParam)
				}
			}
			if name == "Response" && e.ID == 2225 && b[0] == 0 {
				var a ctap.ClientPINResponse
				if ctap.Unmarshal(b[1:], &a) == nil {
					out = append(out, a.PinUvAuthToken)
				}
			}
		}
	}
	var nonEmpty [][]byte
	for _, b := range out {
		if len(b) > 0 {
			nonEmpty = append(nonEmpty, b)
		}
	}
	return nonEmpty
}

func TestImportLogonUISignIn(t *testing.T) {
	t.Parallel()
	st, data, recs := importFile(t, "testdata/logonui-signin.xml", winevent.Options{})
	require.Equal(t, 1, st.Transactions)
	require.Empty(t, st.Unknown)
	srcs := ofType(recs, trace.TypeSource)
	require.Len(t, srcs, 1)
	s := srcs[0]
	require.Equal(t, trace.SideEventLog, s.Side)
	require.Contains(t, s.Process, "LogonUI.exe or a browser? (inferred")
	require.Contains(t, s.Device, "{6f1a7b3e-0c1d-4e5f-9a8b-f1d0a11ab001}")
	require.Contains(t, s.Endpoint, `VID_1209&PID_F1D0`)
	require.Equal(t, "pid 1320", s.Peer)
	require.Equal(t, "transaction {9b2c4f10-5e7a-4c1d-8f3e-2a6b7c8d9e01}", s.Case)

	xs := ofType(recs, trace.TypeExchange)
	var got []string
	for _, x := range xs {
		got = append(got, summary(x))
	}
	require.Equal(t, []string{
		"authenticatorGetInfo → CTAP2_OK",
		"authenticatorClientPIN → CTAP2_OK", "authenticatorClientPIN → CTAP2_OK", // getKeyAgreement, token
		"authenticatorClientPIN → CTAP2_OK", // hmac-secret's key agreement
		"authenticatorGetAssertion → CTAP2_OK",
	}, got)
	ga := xs[len(xs)-1]
	require.Equal(t, "1103+1104", ga.Fields["events"])
	require.Equal(t, "login.microsoft.com", ga.Fields["RpId"])
	require.Contains(t, ga.Response.Error, "no status byte: CTAP2_OK assumed")
	require.Contains(t, ga.Request.Diag, "6 /pinUvAuthParam/: <redacted 32 bytes>")
	require.Contains(t, ga.Request.Diag, "2 /saltEnc/: <redacted")
	require.Contains(t, ga.Response.Summary, "flags UP|UV|ED")
	require.Equal(t, "2225", xs[0].Fields["events"])
	require.Equal(t, "CBOR", xs[0].Request.HID)

	for _, sec := range requestSecrets(t, "testdata/logonui-signin.xml") {
		h := hex.EncodeToString(sec)
		require.NotContains(t, strings.ToLower(string(data)), h, "a secret of the event log leaked into the trace")
	}
	// Every event is in the trace: as an exchange (2225; 1103+1104) or as an event record.
	evs := ofType(recs, trace.TypeEvent)
	var ids []int
	for _, e := range evs {
		ids = append(ids, e.EventID)
	}
	require.Equal(t, []int{1071, 1003, 2104, 2106, 1004}, ids)
	require.Equal(t, ga.Src, evs[3].Src, "the name/value event joins its process's operation")
	require.Contains(t, evs[3].Fields["Value"], "userHandle")

	// Told which process it was, the trace names it.
	_, _, recs = importFile(t, "testdata/logonui-signin.xml", winevent.Options{Processes: map[int]string{1320: "LogonUI.exe"}})
	require.Equal(t, "LogonUI.exe", ofType(recs, trace.TypeSource)[0].Process)
}

func TestImportBrowserRegistration(t *testing.T) {
	t.Parallel()
	st, data, recs := importFile(t, "testdata/browser-registration.xml", winevent.Options{})
	require.Equal(t, 2, st.Transactions)
	require.Equal(t, map[int]int{2999: 1}, st.Unknown)
	require.Equal(t, 1, st.Foreign)
	srcs := ofType(recs, trace.TypeSource)
	require.Len(t, srcs, 2)
	require.Contains(t, srcs[0].Process, "a browser or app? (inferred: relying party webauthn.io")

	xs := ofType(recs, trace.TypeExchange)
	var got []string
	for _, x := range xs {
		got = append(got, summary(x))
	}
	require.Equal(t, []string{
		"authenticatorGetInfo → CTAP2_OK", "authenticatorClientPIN → CTAP2_OK", "authenticatorClientPIN → CTAP2_OK",
		"authenticatorMakeCredential → CTAP2_OK", "authenticatorGetAssertion → CTAP2_ERR_NO_CREDENTIALS",
	}, got)
	mc := xs[3]
	require.Empty(t, mc.Response.Error, "1102 with its status byte needs no note")
	require.Contains(t, mc.Response.Summary, "aaguid 6f1a7b3e0c1d4e5f9a8bf1d0a11ab001")
	require.Equal(t, "true", mc.Fields["RequireResidentKey"])
	require.Equal(t, srcs[1].Src, xs[4].Src)

	evs := ofType(recs, trace.TypeEvent)
	byID := map[int]*trace.Record{}
	for _, e := range evs {
		byID[e.EventID] = e
	}
	require.Contains(t, byID[1005].Error, "Error 0x80090011")
	require.False(t, byID[2999].Known)
	require.Equal(t, "(unknown event)", byID[2999].EventName)
	require.Contains(t, byID[2999].Fields["Request"], "<redacted 38 bytes: unknown event layout")
	require.NotContains(t, string(data), strings.Repeat("5a", 32))
	require.True(t, byID[1042].Known, "Windows Hello events are known and listed")
	require.False(t, byID[7054].Known)
	require.Contains(t, byID[7054].Text, "Microsoft-Windows-HelloForBusiness")

	for _, sec := range requestSecrets(t, "testdata/browser-registration.xml") {
		require.NotContains(t, strings.ToLower(string(data)), hex.EncodeToString(sec))
	}
}

func TestImportWithoutRoot(t *testing.T) {
	t.Parallel()
	// The same events with and without an enclosing element, and as UTF-16 with a BOM (what
	// PowerShell's redirection writes), import alike.
	data, err := os.ReadFile("testdata/browser-registration.xml")
	require.NoError(t, err)
	bare := regexp.MustCompile(`(?s)<\?xml[^>]*>\s*<Events>|</Events>\s*$`).ReplaceAll(data, nil)
	utf16 := []byte{0xFF, 0xFE}
	for _, r := range string(data) {
		utf16 = append(utf16, byte(r), byte(r>>8))
	}
	want, err := winevent.Parse(data)
	require.NoError(t, err)
	for _, in := range [][]byte{bare, utf16} {
		got, err := winevent.Parse(in)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for i := range got {
			got[i].Line, want[i].Line = 0, 0
		}
		require.Equal(t, want, got)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
		line           int
	}{
		{"unclosed", "<Event><System><EventID>1003</EventID></System>\n<EventData>", "unexpected EOF", 2},
		{"no event id", "<Event>\n<System><EventID>abc</EventID></System></Event>", "numeric EventID", 1},
		{"bad time", "\n\n<Event><System><EventID>1</EventID><TimeCreated SystemTime=\"yesterday\"/></System></Event>", "TimeCreated", 3},
		{"mismatched", "<Event><System></Event>", "element <System> closed by </Event>", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := winevent.Parse([]byte(tc.in))
			var se *winevent.SyntaxError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.line, se.Line, "%v", err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := winevent.Parse([]byte("just some text"))
	require.ErrorIs(t, err, winevent.ErrUnknownFormat)
}

// TestParseEVTX reads a real EVTX file through the pinned parser: the Security log that the
// parser's module ships as test data. Its events are not WebAuthN ones; they must all be listed.
func TestParseEVTX(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "www.velocidex.com/golang/evtx").Output()
	require.NoError(t, err, "the EVTX parser module must be in the module cache")
	path := filepath.Join(strings.TrimSpace(string(out)), "testdata", "Security.evtx")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	events, err := winevent.Parse(data)
	require.NoError(t, err)
	require.Len(t, events, 739)
	e := events[0]
	require.NotEmpty(t, e.Provider)
	require.NotZero(t, e.ID)
	require.NotZero(t, e.PID)
	require.Equal(t, 2019, e.Time.Year())
	require.NotEmpty(t, e.Fields)
	var buf bytes.Buffer
	st, err := winevent.Import(events, &buf, winevent.Options{Now: fixedNow})
	require.NoError(t, err)
	require.Equal(t, 739, st.Foreign)
	r, err := trace.NewReader(&buf)
	require.NoError(t, err)
	n := 0
	for rec, err := range r.All() {
		require.NoError(t, err)
		if rec.Type == trace.TypeEvent {
			n++
		}
	}
	require.Equal(t, 739, n, "events of other providers are listed, not dropped")

	// A damaged file is an error or fewer events, never a crash.
	bad := append([]byte(nil), data...)
	for i := 4096 + 512; i < len(bad); i += 61 {
		bad[i] ^= 0xA5
	}
	_, _ = winevent.Parse(bad)
	_, err = winevent.Parse(data[:100])
	require.Error(t, err)

	// A record of size zero in a chunk claiming 2^40 records: skipped as damaged, at once.
	one, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "testdata", "Security_1_record.evtx"))
	require.NoError(t, err)
	binary.LittleEndian.PutUint64(one[4096+16:], 1<<40)
	start := time.Now()
	events, err = winevent.Parse(one)
	require.ErrorContains(t, err, "damaged chunks skipped: chunk 0: record numbers")
	require.Empty(t, events)
	require.Less(t, time.Since(start), 5*time.Second)
	binary.LittleEndian.PutUint64(one[4096+16:], binary.LittleEndian.Uint64(one[4096+8:]))
	binary.LittleEndian.PutUint32(one[4096+512+4:], 0)
	_, err = winevent.Parse(one)
	require.ErrorContains(t, err, "record 1 has size 0")
}

func FuzzParseXML(f *testing.F) {
	// Seeds are single events of the fixtures: the fuzzing engine minimises every new input it
	// finds, and whole fixtures (18 KB) made it spend its time minimising instead of fuzzing.
	for _, p := range []string{"testdata/logonui-signin.xml", "testdata/browser-registration.xml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.HasPrefix(line, []byte("<Event")) && len(line) < 1500 {
				f.Add(line)
			}
		}
	}
	f.Add([]byte(`<Event><System><EventID>2225</EventID></System><EventData><Data Name="TransactionId">{1}</Data><Data Name="RequestCommand">0x90</Data><Data Name="Request">06A20102020A</Data></EventData></Event>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := winevent.Parse(data)
		if err != nil {
			var se *winevent.SyntaxError
			if !errors.As(err, &se) && !errors.Is(err, winevent.ErrUnknownFormat) && !strings.HasPrefix(err.Error(), "evtx:") {
				t.Fatalf("unexpected error kind: %v", err)
			}
		}
		var buf bytes.Buffer
		if _, err := winevent.Import(events, &buf, winevent.Options{Now: fixedNow}); err != nil {
			t.Fatalf("import: %v", err)
		}
		r, err := trace.NewReader(&buf)
		if err != nil {
			t.Fatalf("imported trace does not read: %v", err)
		}
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("imported trace does not read: %v", err)
			}
		}
	})
}
