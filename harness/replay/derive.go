package replay

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// prepared is a step ready to send, or the reason it cannot be.
type prepared struct {
	req []byte
	// derived names what was re-derived, for the output ("pinHashEnc from --pin").
	derived []string
	// skip, when set, says why the step is not replayable.
	skip string
	// notes are facts about the request the output shows (an unknown credential ID).
	notes []string
	// pin is the key agreement of a clientPIN request, to read its answer.
	pin *pinSession
	// pinNext is the PIN the key has after this step succeeds ("" = unchanged).
	pinNext string
	// hmac is the hmac-secret key agreement of the request and the salt length, to read the output.
	hmac     *pinSession
	hmacSalt int
	// wrongPIN marks a request sent with a wrong PIN on purpose.
	wrongPIN bool
}

func (p *prepared) derive(what string) { p.derived = append(p.derived, what) }

// extraKAFunc fetches the key's key-agreement key with an extra getKeyAgreement.
type extraKAFunc func(ctx context.Context, v int) (cose.Key, error)

// prepare builds the request to send for a step.
func (s *session) prepare(ctx context.Context, st *Step, extra extraKAFunc) (*prepared, error) {
	p := &prepared{req: st.Request}
	switch {
	case st.Cancelled:
		p.skip = "the host cancelled it while the key worked (CTAPHID_CANCEL): when a cancel arrives is timing, which a replay does not reproduce"
		return p, nil
	case st.HID == ctaphid.CmdCancel:
		p.skip = "a CTAPHID_CANCEL with nothing to cancel"
		return p, nil
	case st.HID == ctaphid.CmdMsg:
		return s.prepareU2F(st, p), nil
	case st.HID != ctaphid.CmdCBOR:
		if len(st.Redacted) > 0 {
			p.skip = "part of the request was redacted and it is not a CTAP message whose parts can be re-derived"
		}
		return p, nil
	case len(st.Request) == 0:
		return p, nil
	}
	if len(st.Request) == 1 {
		return p, nil // a command without parameters (getInfo, reset, getNextAssertion, selection)
	}
	m, err := decodeMap(st.Request[1:])
	if err != nil {
		if len(st.Redacted) > 0 {
			p.skip = "the recorded request was not CBOR the recorder could read, so it was redacted whole: nothing is left to send"
			return p, nil
		}
		p.notes = append(p.notes, "sent as recorded: its parameters are not a CBOR map ("+err.Error()+")")
		return p, nil
	}
	changed := false
	switch st.Cmd {
	case ctap.CmdClientPIN:
		changed, err = s.prepareClientPIN(ctx, st, m, p, extra)
	case ctap.CmdMakeCredential:
		changed = s.mapList(m, 5, "excludeList", p)
		ch, err2 := s.prepareHMAC(ctx, m, 6, "hmac-secret-mc", p, extra)
		changed, err = changed || ch, err2
	case ctap.CmdGetAssertion:
		changed = s.mapList(m, 3, "allowList", p)
		ch, err2 := s.prepareHMAC(ctx, m, 4, "hmac-secret", p, extra)
		changed, err = changed || ch, err2
		s.lastCDH = getBytes(m, 2)
	case ctap.CmdBioEnrollment, ctap.CmdBioEnrollmentPre:
		if params := getMap(m, 3); params != nil {
			if id := getBytes(params, 1); id != nil {
				if n, ok := s.templates[hex.EncodeToString(id)]; ok && !bytes.Equal(n, id) {
					set(params, 1, n)
					changed = true
					p.derive("templateId mapped to this key's")
				}
			}
		}
	case ctap.CmdCredentialManagement, ctap.CmdCredentialManagementPre:
		if params := getMap(m, 2); params != nil {
			if d := getMap(params, 2); d != nil {
				if id := getBytes(d, "id"); id != nil {
					if n, ok := s.newCred(id); ok {
						if !bytes.Equal(n, id) {
							set(d, "id", n)
							changed = true
							p.derive("credentialID mapped to this key's")
						}
					} else {
						p.notes = append(p.notes, fmt.Sprintf("credential %s is not one this replay saw the key make: sent as recorded", short(id)))
					}
				}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if p.skip != "" {
		return p, nil
	}
	if keys, ok := authParamKeys[st.Cmd]; ok {
		ch, skip, err := s.reauth(st, m, keys, p)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			p.skip = skip
			return p, nil
		}
		changed = changed || ch
	}
	if !changed {
		if len(st.Redacted) > 0 {
			p.skip = "part of the request was redacted and this replay does not know how to re-derive it"
		}
		return p, nil
	}
	body, err := encode(m)
	if err != nil {
		return nil, fmt.Errorf("re-encoding %s: %w", st.Cmd, err)
	}
	p.req = append([]byte{st.Request[0]}, body...)
	return p, nil
}

// mapList substitutes the new key's credential IDs in a list of credential descriptors.
func (s *session) mapList(m map[any]any, key int, name string, p *prepared) bool {
	v, _ := get(m, key)
	list, ok := v.([]any)
	if !ok {
		return false
	}
	changed, unknown := false, 0
	for _, e := range list {
		d, ok := e.(map[any]any)
		if !ok {
			continue
		}
		id := getBytes(d, "id")
		if id == nil {
			continue
		}
		n, ok := s.newCred(id)
		switch {
		case !ok:
			unknown++
		case !bytes.Equal(n, id):
			set(d, "id", n)
			changed = true
		}
	}
	if changed {
		p.derive(name + " credential IDs mapped to this key's")
	}
	if unknown > 0 {
		p.notes = append(p.notes, fmt.Sprintf("%d of %d %s entries name credentials this key was not seen to make (made before the trace): sent as recorded",
			unknown, len(list), name))
	}
	return changed
}

// reauth recomputes a pinUvAuthParam with the replay's token.
func (s *session) reauth(st *Step, m map[any]any, keys [2]int, p *prepared) (bool, string, error) {
	param := getBytes(m, keys[0])
	if len(param) == 0 {
		return false, "", nil // none, or the empty one hosts send to make the key wait for a touch
	}
	if s.tok == nil {
		return false, "its pinUvAuthParam was made with a pinUvAuthToken the replay does not have: " + s.tokWhy, nil
	}
	if v, ok := getUint(m, keys[1]); ok && int(v) != s.tok.proto.Version() {
		return false, fmt.Sprintf("it uses PIN/UV auth protocol %d but the replay's token (step #%d) is of protocol %d", v, s.tok.step, s.tok.proto.Version()), nil
	}
	msg, err := authMessage(st.Cmd, m)
	if err != nil {
		return false, err.Error(), nil
	}
	set(m, keys[0], s.tok.proto.Authenticate(s.tok.b, msg))
	p.derive(fmt.Sprintf("pinUvAuthParam with the token of step #%d", s.tok.step))
	return true, "", nil
}

// prepareHMAC re-derives an hmac-secret (or hmac-secret-mc) input: a fresh key agreement with the
// new key and the replay's own salt.
func (s *session) prepareHMAC(ctx context.Context, m map[any]any, extKey int, name string, p *prepared, extra extraKAFunc) (bool, error) {
	ext := getMap(m, extKey)
	in := getMap(ext, name)
	if in == nil {
		return false, nil
	}
	v, ok := getUint(in, 4)
	proto, err := protocolOf(v, ok, s.rand)
	if err != nil {
		p.skip = name + ": " + err.Error()
		return false, nil
	}
	enc := getBytes(in, 2)
	n := len(enc)
	if proto.Version() == 2 {
		n -= 16
	}
	if n != 32 && n != 64 {
		p.skip = fmt.Sprintf("%s: saltEnc of %d bytes holds no whole salt (32 or 64 bytes)", name, len(enc))
		return false, nil
	}
	ps, note, err := s.encapsulate(ctx, proto, extra)
	if err != nil {
		p.skip = name + ": " + err.Error()
		return false, nil
	}
	if note != "" {
		p.notes = append(p.notes, note)
	}
	salt := replaySalt(n)
	saltEnc, err := proto.Encrypt(ps.secret, salt)
	if err != nil {
		return false, err
	}
	set(in, 1, ps.platformKey)
	set(in, 2, saltEnc)
	set(in, 3, proto.Authenticate(ps.secret, saltEnc))
	p.hmac, p.hmacSalt = ps, n
	p.derive(name + " keyAgreement, saltEnc, saltAuth (the replay's own salt: the recorded one was encrypted for the recording host)")
	return true, nil
}

// prepareClientPIN re-derives a clientPIN request.
func (s *session) prepareClientPIN(ctx context.Context, st *Step, m map[any]any, p *prepared, extra extraKAFunc) (bool, error) {
	sub, _ := getUint(m, 2)
	switch sub {
	case ctap.PINGetRetries, ctap.PINGetKeyAgreement, ctap.PINGetUVRetries:
		return false, nil
	case ctap.PINSetPIN, ctap.PINChangePIN, ctap.PINGetPinToken, ctap.PINGetPinUvAuthTokenUsingPinWithPerms,
		ctap.PINGetPinUvAuthTokenUsingUvWithPerms:
	default:
		return false, nil
	}
	v, ok := getUint(m, 1)
	proto, err := protocolOf(v, ok, s.rand)
	if err != nil {
		p.skip = err.Error()
		return false, nil
	}
	failed := recordedStatus(st) != ctap.StatusOK
	pin := s.pin
	switch sub {
	case ctap.PINSetPIN:
		if !s.pinWrites {
			p.skip = "setPIN gives the key a PIN: --destructive allows it on a key that is not emulated (with the PIN from --pin)"
			return false, nil
		}
		pin = s.setPINTo
		if recordedStatus(st) == ctap.ErrPINPolicyViolation {
			pin = "123" // shorter than any key's minimum: the recorded PIN broke the key's policy
		}
		if pin == "" {
			p.skip = "setPIN needs the PIN to set: give --pin"
			return false, nil
		}
	case ctap.PINChangePIN:
		if !s.pinWrites {
			p.skip = "changePIN changes the key's PIN: --destructive (and --new-pin) allow it on a key that is not emulated"
			return false, nil
		}
	}
	if sub != ctap.PINSetPIN && sub != ctap.PINGetPinUvAuthTokenUsingUvWithPerms {
		switch {
		case failed:
			if !s.wrongOK {
				p.skip = fmt.Sprintf("the recorded attempt failed (%s), so the replay would send a wrong PIN, which uses up one of this key's PIN retries: --destructive allows it",
					statusName(st))
				return false, nil
			}
			pin, p.wrongPIN = s.wrongPIN(), true
		case pin == "":
			p.skip = "it needs the key's PIN, which no trace holds (not even with --trace-secrets: the PIN travels encrypted for one key agreement): give --pin"
			return false, nil
		}
	}
	ps, note, err := s.encapsulate(ctx, proto, extra)
	if err != nil {
		p.skip = err.Error()
		return false, nil
	}
	if note != "" {
		p.notes = append(p.notes, note)
	}
	p.pin = ps
	set(m, 3, ps.platformKey)
	derived := []string{"keyAgreement (the replay's own)"}
	pinWord := "the PIN"
	if p.wrongPIN {
		pinWord = "a wrong PIN, as the recorded attempt failed with " + statusName(st)
	}
	switch sub {
	case ctap.PINSetPIN:
		padded, err := pinuv.PadPIN(pin)
		if err != nil {
			p.skip = "setPIN: " + err.Error()
			return false, nil
		}
		newPinEnc, err := proto.Encrypt(ps.secret, padded)
		if err != nil {
			return false, err
		}
		set(m, 5, newPinEnc)
		set(m, 4, proto.Authenticate(ps.secret, newPinEnc))
		p.pinNext = pin
		derived = append(derived, "newPinEnc", "pinUvAuthParam")
	case ctap.PINChangePIN:
		next := s.newPIN
		if next == "" {
			next = pin
		}
		if failed {
			next = ""
		}
		padded, err := pinuv.PadPIN(nonEmpty(next, pin))
		if err != nil {
			p.skip = "changePIN: " + err.Error()
			return false, nil
		}
		newPinEnc, err := proto.Encrypt(ps.secret, padded)
		if err != nil {
			return false, err
		}
		pinHashEnc, err := proto.Encrypt(ps.secret, pinuv.PINHash(pin))
		if err != nil {
			return false, err
		}
		set(m, 5, newPinEnc)
		set(m, 6, pinHashEnc)
		set(m, 4, proto.Authenticate(ps.secret, append(slices.Clone(newPinEnc), pinHashEnc...)))
		p.pinNext = next
		derived = append(derived, "newPinEnc", "pinHashEnc from "+pinWord, "pinUvAuthParam")
	case ctap.PINGetPinUvAuthTokenUsingUvWithPerms:
	default:
		pinHashEnc, err := proto.Encrypt(ps.secret, pinuv.PINHash(pin))
		if err != nil {
			return false, err
		}
		set(m, 6, pinHashEnc)
		derived = append(derived, "pinHashEnc from "+pinWord)
	}
	p.derive(strings.Join(derived, ", "))
	return true, nil
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// recordedStatus is the CTAP status the recorded key answered (StatusOK when it is unknown).
func recordedStatus(st *Step) ctap.Status {
	if st.Response == nil || st.Response.Code == nil || (st.Response.HID != "CBOR" && st.Response.HID != "-") {
		return ctap.StatusOK
	}
	return ctap.Status(*st.Response.Code)
}

func statusName(st *Step) string {
	if st.Response == nil {
		return "no answer"
	}
	if st.Response.Status != "" {
		return st.Response.Status
	}
	return st.Response.HID
}

func short(id []byte) string {
	h := hex.EncodeToString(id)
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
