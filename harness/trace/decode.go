package trace

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/ctap/u2f"
)

// HIDName returns the name of a CTAPHID command byte as traces write it ("CBOR", "INIT", …).
func HIDName(cmd byte) string {
	switch cmd {
	case ctaphid.CmdPing:
		return "PING"
	case ctaphid.CmdMsg:
		return "MSG"
	case ctaphid.CmdLock:
		return "LOCK"
	case ctaphid.CmdInit:
		return "INIT"
	case ctaphid.CmdWink:
		return "WINK"
	case ctaphid.CmdCBOR:
		return "CBOR"
	case ctaphid.CmdCancel:
		return "CANCEL"
	case ctaphid.CmdKeepalive:
		return "KEEPALIVE"
	case ctaphid.CmdError:
		return "ERROR"
	}
	return fmt.Sprintf("0x%02X", cmd)
}

// HIDCode is the inverse of HIDName; ok is false for a name it does not know.
func HIDCode(name string) (byte, bool) {
	for _, c := range []byte{ctaphid.CmdPing, ctaphid.CmdMsg, ctaphid.CmdLock, ctaphid.CmdInit, ctaphid.CmdWink,
		ctaphid.CmdCBOR, ctaphid.CmdCancel, ctaphid.CmdKeepalive, ctaphid.CmdError} {
		if HIDName(c) == name {
			return c, true
		}
	}
	var c byte
	if _, err := fmt.Sscanf(name, "0x%02X", &c); err == nil && c&0x80 != 0 {
		return c, true
	}
	return 0, false
}

// Decoder turns message payloads into trace messages. It is the one place that knows where CTAP
// messages carry secrets; the event-log importer uses it too.
type Decoder struct {
	// KeepSecrets leaves secrets in place (--trace-secrets).
	KeepSecrets bool
}

// Request decodes a message a host sent: cmd is its CTAPHID command (CmdCBOR, CmdMsg, …). It
// returns the message and the spans of payload that were redacted.
func (d Decoder) Request(t time.Time, cid uint32, cmd byte, payload []byte) (*Message, []Span) {
	m := newMessage(t, cid, cmd, payload)
	var secrets []Span
	switch cmd {
	case ctaphid.CmdCBOR:
		if len(payload) == 0 {
			m.Error = "empty CBOR message"
			break
		}
		c := ctap.Command(payload[0])
		m.Command, m.Code = c.String(), intPtr(int(payload[0]))
		secrets = d.cborBody(m, payload, schemas[c][0], c)
	case ctaphid.CmdMsg:
		d.u2fRequest(m, payload)
	case ctaphid.CmdInit:
		m.Summary = "nonce " + hex.EncodeToString(payload)
	case ctaphid.CmdPing:
		m.Summary = fmt.Sprintf("%d bytes to echo", len(payload))
	case ctaphid.CmdLock:
		if len(payload) == 1 {
			m.Summary = fmt.Sprintf("lock for %d s", payload[0])
		}
	}
	d.finish(m, payload, secrets)
	return m, secrets
}

// Response decodes a message a key sent; req is the request it answers (nil when unknown), which
// picks the names and the secrets of a CTAP2 response and the layout of a U2F one.
func (d Decoder) Response(t time.Time, cid uint32, cmd byte, payload []byte, req *Message) (*Message, []Span) {
	m := newMessage(t, cid, cmd, payload)
	var secrets []Span
	var reqCmd ctap.Command
	var ins byte
	if req != nil && req.Code != nil {
		switch req.HID {
		case "CBOR", "-":
			reqCmd = ctap.Command(*req.Code)
		case "MSG":
			ins = byte(*req.Code)
		}
	}
	switch cmd {
	case ctaphid.CmdCBOR:
		if len(payload) == 0 {
			m.Error = "empty CBOR response (no status byte)"
			break
		}
		st := ctap.Status(payload[0])
		m.Status, m.Code = st.String(), intPtr(int(payload[0]))
		if reqCmd != 0 {
			m.Command = reqCmd.String()
		}
		secrets = d.cborBody(m, payload, schemas[reqCmd][1], reqCmd)
	case ctaphid.CmdMsg:
		d.u2fResponse(m, payload, ins)
	case ctaphid.CmdError:
		if len(payload) > 0 {
			m.Status = ctaphid.ErrorCode(payload[0]).String()
		}
	case ctaphid.CmdKeepalive:
		if len(payload) > 0 {
			m.Status = keepaliveName(payload[0])
		}
	case ctaphid.CmdInit:
		if len(payload) >= 17 {
			m.Summary = fmt.Sprintf("nonce %x, channel %08x, CTAPHID protocol %d, device %d.%d.%d, capabilities %s",
				payload[:8], binary.BigEndian.Uint32(payload[8:]), payload[12], payload[13], payload[14], payload[15],
				capNames(payload[16]))
		}
	case ctaphid.CmdPing:
		m.Summary = fmt.Sprintf("%d bytes echoed", len(payload))
	}
	d.finish(m, payload, secrets)
	return m, secrets
}

func newMessage(t time.Time, cid uint32, cmd byte, payload []byte) *Message {
	return &Message{T: t, CID: fmt.Sprintf("%08x", cid), HID: HIDName(cmd), Len: len(payload)}
}

func (d Decoder) finish(m *Message, payload []byte, secrets []Span) {
	m.Hex = newBytes(payload, secrets)
}

func intPtr(i int) *int { return &i }

func keepaliveName(s byte) string {
	switch s {
	case ctaphid.StatusProcessing:
		return "PROCESSING"
	case ctaphid.StatusUPNeeded:
		return "UPNEEDED"
	}
	return fmt.Sprintf("0x%02X", s)
}

func capNames(c byte) string {
	var n []string
	for _, x := range []struct {
		bit  byte
		name string
	}{{ctaphid.CapWink, "WINK"}, {ctaphid.CapCBOR, "CBOR"}, {ctaphid.CapNMsg, "NMSG"}} {
		if c&x.bit != 0 {
			n = append(n, x.name)
		}
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, "|")
}

// cborBody decodes payload[1:] (after the command or status byte) with schema s, fills m.Diag and
// returns the secret spans (offsets in payload). A body that cannot be decoded while s says it
// may hold secrets is redacted whole: where the secrets sit is then unknown.
func (d Decoder) cborBody(m *Message, payload []byte, s *schema, cmd ctap.Command) []Span {
	body := payload[1:]
	if len(body) == 0 {
		return nil
	}
	n, err := walk(body, 1)
	if n == nil {
		m.Error = "CBOR: " + err.Error()
		if !d.KeepSecrets && s.hasSecrets() {
			m.Diag = fmt.Sprintf("<%d bytes, not decodable, redacted whole>", len(body))
			return []Span{{1, len(payload)}}
		}
		m.Diag = fmt.Sprintf("<%d bytes, not decodable>", len(body))
		return nil
	}
	var secrets []Span
	notes := map[int]string{}
	collect(payload, n, s, &secrets, notes)
	if err != nil { // trailing bytes after the item
		m.Error = "CBOR: " + err.Error()
		if s.hasSecrets() {
			secrets = append(secrets, Span{n.end, len(payload)})
		}
	}
	if d.KeepSecrets {
		secrets = nil
	}
	secrets = mergeSpans(secrets, len(payload))
	r := renderer{msg: payload, secrets: secrets, notes: notes}
	r.render(n, s)
	m.Diag = r.sb.String()
	if cmd == ctap.CmdMakeCredential || cmd == ctap.CmdGetAssertion || cmd == ctap.CmdGetNextAssertion {
		for _, note := range notes {
			m.Summary = "authData: " + note
		}
	}
	return secrets
}

// collect finds the secrets below n (a map with schema s) and notes on authData.
func collect(msg []byte, n *node, s *schema, secrets *[]Span, notes map[int]string) {
	if s == nil {
		return
	}
	if s.elem != nil {
		for _, e := range n.elems {
			collect(msg, e, s.elem, secrets, notes)
		}
	}
	for _, p := range n.pairs {
		f := s.lookup(p.key.keyOf())
		if f == nil {
			continue
		}
		v := p.val
		switch {
		case f.secret:
			switch v.major {
			case 2, 3:
				*secrets = append(*secrets, v.content())
			case 7: // true/false/null: hmac-secret's answer at makeCredential
			default:
				*secrets = append(*secrets, Span{v.start, v.end})
			}
		case f.authData && v.major == 2:
			c := v.content()
			note, extSpans := authDataNote(msg[c.Start:c.End], c.Start)
			notes[v.start] = note
			*secrets = append(*secrets, extSpans...)
		case f.child != nil:
			collect(msg, v, f.child, secrets, notes)
		}
	}
}

// authDataNote reads authenticator data (at offset base of the message) into one line, and
// returns the spans of secret extension outputs in it.
func authDataNote(ad []byte, base int) (string, []Span) {
	a, err := ctap.ParseAuthData(ad)
	if err != nil {
		return "unparsable authData: " + err.Error(), nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rpIdHash %x…, flags %s, signCount %d", a.RPIDHash[:4], ctap.FlagNames(a.Flags), a.SignCount)
	if a.Attested != nil {
		fmt.Fprintf(&b, ", aaguid %x, credentialId %d bytes", a.Attested.AAGUID, len(a.Attested.CredentialID))
	}
	var spans []Span
	if len(a.Extensions) > 0 {
		off := base + len(ad) - len(a.Extensions) // extensions are the last member
		if n, err := walk(a.Extensions, off); err == nil {
			var keys []string
			for _, p := range n.pairs {
				if k, ok := p.key.keyOf().(string); ok {
					keys = append(keys, k)
				}
			}
			fmt.Fprintf(&b, ", extensions %s", strings.Join(keys, ","))
			collect(nil, n, authDataExtensions, &spans, nil)
		}
	}
	return b.String(), spans
}

var u2fNames = map[byte]string{u2f.InsRegister: "U2F_REGISTER", u2f.InsAuthenticate: "U2F_AUTHENTICATE", u2f.InsVersion: "U2F_VERSION"}

// u2fRequest decodes a CTAP1 request APDU. U2F carries no secrets on the wire: the key handle is
// opaque to the host and wrapped by the key.
func (d Decoder) u2fRequest(m *Message, apdu []byte) {
	c, err := u2f.ParseAPDU(apdu)
	if err != nil {
		m.Error = "APDU: " + err.Error()
		return
	}
	m.Code = intPtr(int(c.INS))
	m.Command = u2fNames[c.INS]
	if m.Command == "" {
		m.Command = fmt.Sprintf("U2F_INS_0x%02X", c.INS)
	}
	switch c.INS {
	case u2f.InsRegister:
		if r, err := u2f.ParseRegisterRequest(c); err == nil {
			m.Summary = fmt.Sprintf("challenge %x, application %x", r.Challenge, r.Application)
		}
	case u2f.InsAuthenticate:
		if r, err := u2f.ParseAuthenticateRequest(c); err == nil {
			m.Summary = fmt.Sprintf("control %s, challenge %x, application %x, key handle %x",
				controlName(r.Control), r.Challenge, r.Application, r.KeyHandle)
		}
	}
	if m.Summary == "" {
		m.Summary = fmt.Sprintf("CLA %02X INS %02X P1 %02X P2 %02X, %d data bytes", c.CLA, c.INS, c.P1, c.P2, len(c.Data))
	}
}

func controlName(c u2f.Control) string {
	switch c {
	case u2f.ControlEnforceUserPresence:
		return "enforce-user-presence"
	case u2f.ControlCheckOnly:
		return "check-only"
	case u2f.ControlDontEnforceUserPresence:
		return "dont-enforce-user-presence"
	}
	return fmt.Sprintf("0x%02X", byte(c))
}

func (d Decoder) u2fResponse(m *Message, apdu []byte, ins byte) {
	data, sw, err := u2f.ParseResponse(apdu)
	if err != nil {
		m.Error = "APDU: " + err.Error()
		return
	}
	m.Status = fmt.Sprintf("%s %04X", sw, uint16(sw))
	if sw != u2f.SWNoError || len(data) == 0 {
		return
	}
	switch ins {
	case u2f.InsRegister:
		if r, err := u2f.ParseRegisterResponse(data); err == nil {
			m.Summary = fmt.Sprintf("user public key %x, key handle %x, attestation certificate %d bytes, signature %d bytes",
				r.PublicKey, r.KeyHandle, len(r.Certificate), len(r.Signature))
		} else {
			m.Error = "register response: " + err.Error()
		}
	case u2f.InsAuthenticate:
		if r, err := u2f.ParseAuthenticateResponse(data); err == nil {
			m.Summary = fmt.Sprintf("user presence %02x, counter %d, signature %d bytes", r.UserPresence, r.Counter, len(r.Signature))
		} else {
			m.Error = "authenticate response: " + err.Error()
		}
	case u2f.InsVersion:
		m.Summary = fmt.Sprintf("version %q", data)
	default:
		m.Summary = fmt.Sprintf("%d data bytes", len(data))
	}
}

// Diag renders any CBOR item in diagnostic notation, without names or redaction: for payloads
// that are not CTAP messages (an event log's API-level blobs). Undecodable input is described
// by its size.
func Diag(data []byte) string {
	n, err := walk(data, 0)
	if n == nil {
		return fmt.Sprintf("<%d bytes, not CBOR: %v>", len(data), err)
	}
	r := renderer{msg: data}
	r.render(n, nil)
	if err != nil {
		return r.sb.String() + fmt.Sprintf(" <and %d more bytes>", len(data)-n.end)
	}
	return r.sb.String()
}
