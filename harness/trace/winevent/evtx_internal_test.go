package winevent

import (
	"bytes"
	"testing"

	"github.com/Velocidex/ordereddict"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
	"www.velocidex.com/golang/evtx"
)

// TestFromEVTXRendersLikeXML builds the dictionary the EVTX parser makes of a WebAuthN 2225
// event (binary, GUID, UInt8 and HexInt32 values as the parser types them) and checks it becomes
// the same Event an XML export gives, and imports as an exchange.
func TestFromEVTXRendersLikeXML(t *testing.T) {
	t.Parallel()
	data := ordereddict.NewDict().
		Set("TransactionId", "9B2C4F10-5E7A-4C1D-8F3E-2A6B7C8D9E01").
		Set("RequestCommand", uint8(144)).
		Set("RequestLength", uint32(1)).
		Set("Request", []byte{0x04}).
		Set("ResponseCommand", uint8(144)).
		Set("ResponseLength", uint32(2)).
		Set("Response", []byte{0x00, 0xa0}).
		Set("U2fProtocol", false)
	sys := ordereddict.NewDict().
		Set("Provider", ordereddict.NewDict().Set("Name", Provider)).
		Set("EventID", ordereddict.NewDict().Set("Value", uint16(2225))).
		Set("Level", uint8(4)).
		Set("TimeCreated", ordereddict.NewDict().Set("SystemTime", 1795939092.5)).
		Set("Execution", ordereddict.NewDict().Set("ProcessID", uint32(1320)).Set("ThreadID", uint32(1324))).
		Set("Channel", "Microsoft-Windows-WebAuthN/Operational").
		Set("Computer", "DESKTOP-LAB01")
	rec := &evtx.EventRecord{Event: ordereddict.NewDict().Set("Event", ordereddict.NewDict().Set("System", sys).Set("EventData", data))}
	rec.Header.RecordID = 77
	ev, ok := fromEVTX(rec)
	require.True(t, ok)
	require.Equal(t, 2225, ev.ID)
	require.Equal(t, 1320, ev.PID)
	require.Equal(t, uint64(77), ev.RecordID)
	require.Equal(t, int64(1795939092), ev.Time.Unix())
	require.Equal(t, "{9b2c4f10-5e7a-4c1d-8f3e-2a6b7c8d9e01}", ev.Transaction())
	v, _ := ev.Get("Request")
	require.Equal(t, "04", v)
	v, _ = ev.Get("Response")
	require.Equal(t, "00A0", v)
	v, _ = ev.Get("U2fProtocol")
	require.Equal(t, "false", v)

	var buf bytes.Buffer
	st, err := Import([]Event{ev}, &buf, Options{})
	require.NoError(t, err)
	require.Equal(t, 1, st.Exchanges)
	r, err := trace.NewReader(&buf)
	require.NoError(t, err)
	for x, err := range r.Exchanges() {
		require.NoError(t, err)
		require.Equal(t, "authenticatorGetInfo", x.Request.Command)
		require.Equal(t, "CTAP2_OK", x.Response.Status)
	}
	_, ok = fromEVTX(&evtx.EventRecord{Event: "not a dictionary"})
	require.False(t, ok)
}
