package fieldmatch_test

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/trace/winevent"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/fieldmatch"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/touch-probe-hang.xml")

func TestParseSignatures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sig, err string }{
		{sig: "makeCredential pinUvAuthParam=empty -> PIN_INVALID"},
		{sig: "getAssertion up=false -> ok && getAssertion -> CTAP2_ERR_PIN_AUTH_INVALID|error"},
		{sig: "event 1002 Error=52E"},
		{sig: "reset -> *"},
		{sig: "makeCredential -> PIN_INVALID && ", err: "empty clause"},
		{sig: "makeCredential pinUvAuthParam=empty PIN_INVALID", err: "want COMMAND"},
		{sig: "makeCredential pinAuth=empty -> ok", err: `unknown predicate "pinAuth=empty"`},
		{sig: "sign -> ok", err: `unknown command "sign"`},
		{sig: "reset -> PIN_WRONG", err: "PIN_WRONG"},
		{sig: "event x", err: "not a number"},
		{sig: "event 1002 Error", err: "FIELD=TEXT"},
		{sig: strings.Repeat("reset -> ok && ", 100), err: "at most"},
	} {
		_, err := fieldmatch.Parse(tc.sig)
		if tc.err == "" {
			require.NoError(t, err, tc.sig)
			continue
		}
		require.ErrorContains(t, err, tc.err, tc.sig)
	}
}

// known is the embedded catalog's field failures.
func known(t *testing.T) []fieldmatch.Known {
	t.Helper()
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	out, _, err := cat.KnownFailures()
	require.NoError(t, err)
	require.NotEmpty(t, out)
	return out
}

// eventXML renders one Microsoft-Windows-WebAuthN/Operational event as wevtutil qe /f:xml does
// (windows-webauthn-eventlog.md: Binary as uppercase hex, HexInt32 as 0x…, GUID in braces).
func eventXML(rec, id int, sec int, data [][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-WebAuthN" Guid="{3ae1ea61-c002-47fb-b06c-4022a8c98929}"/><EventID>%d</EventID><Version>0</Version><Level>4</Level><Task>0</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="2026-11-24T09:14:%02d.0000000Z"/><EventRecordID>%d</EventRecordID><Correlation/><Execution ProcessID="7788" ThreadID="7792"/><Channel>Microsoft-Windows-WebAuthN/Operational</Channel><Computer>DESKTOP-LAB01</Computer><Security UserID="S-1-5-18"/></System><EventData><Data Name="TransactionId">{41d7e2a0-93b5-4f6c-a1d8-0c2e4b6f8a13}</Data>`, id, sec, rec)
	for _, d := range data {
		fmt.Fprintf(&b, `<Data Name="%s">%s</Data>`, d[0], d[1])
	}
	b.WriteString("</EventData></Event>\n")
	return b.String()
}

// registrationLog is a browser registration's event log as the reference tables describe it:
// 1000, 2104, 1101 (the request), then 1002 with the error.
func registrationLog(t *testing.T, req []byte, errHex string, hresult int32) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<Events>\n")
	b.WriteString(eventXML(1, 1000, 1, nil))
	b.WriteString(eventXML(2, 2104, 2, [][2]string{{"ProviderName", "Usb"}, {"DevicePath", `\\?\HID#VID_1209&amp;PID_F1D0`},
		{"Manufacturer", "fidolab"}, {"Product", "fidolab key"}, {"AAGuid", "{6f1a7b3e-0c1d-4e5f-9a8b-f1d0a11ab0f2}"}, {"U2fProtocol", "false"}}))
	b.WriteString(eventXML(3, 1101, 3, [][2]string{{"RpId", "vault.example.com"}, {"RequireResidentKey", "true"}, {"CredentialCount", "1"},
		{"RequestLength", fmt.Sprint(len(req))}, {"Request", strings.ToUpper(hex.EncodeToString(req))}}))
	b.WriteString(eventXML(4, 1002, 4, [][2]string{{"Error", errHex}, {"HResult", fmt.Sprint(hresult)}}))
	b.WriteString("</Events>\n")
	return []byte(b.String())
}

func importLog(t *testing.T, xml []byte) *fieldmatch.Facts {
	t.Helper()
	events, err := winevent.Parse(xml)
	require.NoError(t, err)
	var tr bytes.Buffer
	_, err = winevent.Import(events, &tr, winevent.Options{})
	require.NoError(t, err)
	f, err := fieldmatch.Read(&tr)
	require.NoError(t, err)
	return f
}

func ids(hits []fieldmatch.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.ID)
	}
	return out
}

// TestEventLogFixturesMatch: event logs built from the reference tables (the touch probe's
// 1101 with an empty pinUvAuthParam and 1002 0x4DE; a long UPN's 1002 0x52E) are recognised, and
// a registration that completed matches nothing.
func TestEventLogFixturesMatch(t *testing.T) {
	t.Parallel()
	k := known(t)
	es256 := int64(-7)
	mc := &ctap.MakeCredentialRequest{ClientDataHash: bytes.Repeat([]byte{7}, 32), RP: &ctap.RPEntity{ID: "vault.example.com"},
		User:             &ctap.UserEntity{ID: []byte("bob"), Name: "bob@test.example", DisplayName: "Bob"},
		PubKeyCredParams: []ctap.CredentialParam{{Type: ctap.CredentialTypePublicKey, Alg: &es256}},
		ExcludeList:      []ctap.CredentialDescriptor{{ID: bytes.Repeat([]byte{9}, 70), Type: ctap.CredentialTypePublicKey}}}
	probe, err := client.EncodeTouchProbe(mc, 2)
	require.NoError(t, err)
	hangXML := registrationLog(t, append([]byte{byte(ctap.CmdMakeCredential)}, probe...), "0x4DE", 0x4DE)
	golden := filepath.Join("testdata", "touch-probe-hang.xml")
	if *update {
		require.NoError(t, os.WriteFile(golden, hangXML, 0o644))
	}
	onDisk, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(hangXML), string(onDisk), "testdata/touch-probe-hang.xml is stale (docs/traces.md uses it): go test ./scenarios/fieldmatch -update")
	hang := importLog(t, hangXML)
	hits := hang.Match(k)
	require.Equal(t, []string{"field-touch-probe-pin-set"}, ids(hits))
	require.Contains(t, strings.Join(hits[0].Why, "\n"), "event 1002")

	long := *mc
	long.User = &ctap.UserEntity{ID: []byte("adele"), Name: strings.Repeat("a", 70) + "@contoso.example"}
	long.ExcludeList = nil
	body, err := ctap.Marshal(&long)
	require.NoError(t, err)
	loop := importLog(t, registrationLog(t, append([]byte{byte(ctap.CmdMakeCredential)}, body...), "0x52E", -2147023570))
	require.Equal(t, []string{"field-long-upn-refused"}, ids(loop.Match(k)))

	fine := importLog(t, registrationLog(t, append([]byte{byte(ctap.CmdMakeCredential)}, body...), "0x0", 0))
	require.Empty(t, fine.Match(k), "a 1002 with another error, no known failure")
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"makeCredential pinUvAuthParam=empty -> PIN_INVALID", "event 1002 Error=52E && reset -> ok", "-> ->", "event"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := fieldmatch.Parse(s)
		if err != nil {
			return
		}
		require.NotEmpty(t, sig.Clauses)
	})
}

func FuzzRead(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "..", "harness", "trace", "testdata", "session.trace.jsonl")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"format":"fidolab-trace","version":1,"created":"2026-11-27T00:00:00Z","secrets":false}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		facts, err := fieldmatch.Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		facts.Match(nil)
	})
}
