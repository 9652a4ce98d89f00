// Package trace records, stores and reads fidolab traces: everything that crossed a CTAPHID
// transport between a host and a key, as JSON Lines (docs/traces.md has the format).
//
// A trace is one header line followed by records, one JSON object per line:
//
//   - source: one endpoint the traffic went through (a device-side port, a host-side connection,
//     a Windows event log), with its transport, address, process and the runner case it belongs to;
//   - report: one raw 64-byte CTAPHID report, with its time and direction;
//   - exchange: one request and its answer, each reassembled into a CTAPHID message and decoded
//     (CTAP2 command and status, CBOR in diagnostic notation with parameter names, U2F APDUs);
//   - event: a Windows WebAuthN event that is not an exchange (or not understood);
//   - mark: a label (a runner case, a step);
//   - end: the recorder finished; a trace without it was cut short.
//
// Secrets (PIN ciphertexts, pinUvAuthParam, the encrypted PIN token, hmac-secret salts and
// outputs, largeBlobKey) are replaced by markers that keep their length, both in the decoded
// CBOR and in the raw report bytes, unless the recorder is told to keep them.
//
// The Recorder builds traces from reports, reusing ctaphid's Reassembler for framing and the
// ctap codec for decoding; DeviceTap plugs it into any device-side transport (ctaphid.Tap) and
// Conn into any host-side ctaphid.ReportConn. The Reader streams a trace back, with errors that
// name the line of a truncated or corrupted record.
package trace
