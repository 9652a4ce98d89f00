package probe

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/ctap/u2f"
)

// checkDef is one check of the plan.
type checkDef struct {
	id, title, need string
	destructive     bool
	ctap2           bool // needs a key that speaks CTAP2
	run             func(ctx context.Context, s *session, c *Check)
}

// Sources the checks cite.
const (
	srcCompatible = "Microsoft's list of what a compatible key implements (docs/reference/windows-host.md: resident keys, client PIN, hmac-secret, several accounts per relying party)"
	srcEntraReg   = "Entra ID's registration options (docs/reference/windows-host.md: resident key required, user verification required, ES256 or RS256, hmacCreateSecret, credentialProtectionPolicy userVerificationOptional, attestation direct)"
)

// plan lists the checks in the order they run: what the key says of itself, then (destructive)
// the reset and a PIN, then what it does with credentials, then what fills it.
func (s *session) plan() []checkDef {
	return []checkDef{
		{id: "ctaphid", title: "CTAPHID and CTAP2 over USB HID",
			need: "Windows reaches a FIDO2 key over CTAPHID and sends CTAP2 as CTAPHID_CBOR (CTAP 2.1 §11.2); a U2F-only key cannot sign in to Windows",
			run:  checkCTAPHID},
		{id: "ctap2", title: "getInfo: a FIDO2 key", need: "the sign-in document's 'compatible FIDO2 security keys': FIDO_2_0 or FIDO_2_1 in getInfo",
			run: checkCTAP2},
		{id: "ctap21", title: "CTAP 2.1 for Settings › Manage", ctap2: true,
			need: "Settings › Accounts › Sign-in options › Security Key › Manage (Windows 10 1903+) changes the PIN, enrols fingerprints and resets keys speaking FIDO_2_1 or FIDO_2_1_PRE (docs/reference/windows-host.md)",
			run:  checkCTAP21},
		{id: "aaguid", title: "AAGUID", ctap2: true,
			need: "Entra ID's key restrictions (allow and block lists) and attestation match the key's model by its AAGUID, at registration and at every sign-in",
			run:  checkAAGUID},
		{id: "resident-keys", title: "Resident (discoverable) credentials", ctap2: true,
			need: "the lock screen finds the account on the key: Entra registers a resident key (" + srcEntraReg + ")", run: checkRK},
		{id: "user-verification", title: "PIN (clientPin) or built-in user verification", ctap2: true,
			need: "Entra ID requires user verification on every sign-in (" + srcCompatible + ")", run: checkUV},
		{id: "pin-protocols", title: "PIN/UV auth protocols", ctap2: true,
			need: "webauthn.dll speaks PIN/UV auth protocols 1 and 2: the key must offer one and answer getKeyAgreement with a P-256 key",
			run:  checkPINProtocols},
		{id: "processing-time", title: "Time to answer getInfo", ctap2: true,
			need: "Windows gives a key about half a second of silence (docs/reference/windows-host.md, Timing)", run: checkProcessing},
		{id: "error-quirks", title: "Errors for bad requests", ctap2: true,
			need: "a key answers a request it cannot read with a CTAP error, never silence (CTAP 2.1 §8, §11.2.9.1)", run: checkErrors},
		{id: "u2f", title: "CTAP1/U2F", need: "not used by Windows sign-in; browsers fall back to it for old U2F sites", run: checkU2F},
		{id: "reset", title: "Reset within 10 s of power-up", destructive: true, ctap2: true,
			need: "Settings › Manage › Reset sends authenticatorReset after the user replugs the key; CTAP 2.1 §6.6 allows it within 10 s of power-up, and some keys refuse it by design (docs/reference/windows-host.md)",
			run:  checkReset},
		{id: "set-pin", title: "Setting a PIN, and a PIN token", destructive: true, ctap2: true,
			need: "Windows sets the key's PIN when none is set (Security info registration, Settings) and then gets a token with it",
			run:  checkSetPIN},
		{id: "make-credential", title: "Registration and attestation", ctap2: true,
			need: srcEntraReg + "; enforced attestation needs packed with a full certificate chain (docs/reference/windows-host.md)", run: checkMakeCredential},
		{id: "algorithms", title: "ES256", ctap2: true, need: "Entra ID registers with ES256 (−7) or RS256 (−257)", run: checkAlgorithms},
		{id: "keepalive", title: "KEEPALIVE while the key waits", ctap2: true,
			need: "without CTAPHID_KEEPALIVE a key has about half a second before Windows gives up (solokeys/solo2 #63 in docs/reference/windows-host.md)",
			run:  checkKeepalive},
		{id: "hmac-secret", title: "hmac-secret for offline sign-in", ctap2: true,
			need: "Windows protects its offline sign-in cache with hmac-secret on every sign-in; the same salt must give the same output, and the assertion's signature must verify with hmac-secret requested (solokeys/solo1 #228) (" + srcCompatible + ")",
			run:  checkHMACSecret},
		{id: "cred-protect", title: "credProtect", ctap2: true,
			need: "Entra ID asks credentialProtectionPolicy userVerificationOptional, enforced (" + srcEntraReg + ")", run: checkCredProtect},
		{id: "long-user-name", title: "A user name longer than 64 characters", ctap2: true,
			need: "a UPN longer than 64 characters made makeCredential fail with 0x8007052E (webauthn-interop #26 in docs/reference/windows-host.md); CTAP lets a key truncate, not refuse",
			run:  checkLongName},
		{id: "max-msg-size", title: "Requests as large as maxMsgSize", ctap2: true,
			need: "hosts fill the allowList up to maxCredentialCountInList within maxMsgSize; a key must read what it advertises",
			run:  checkMaxMsgSize},
		{id: "accounts-order", title: "Several accounts, newest first", destructive: true, ctap2: true,
			need: "lock-screen sign-in and unlock use the account added last: the key must return discoverable credentials newest first (CTAP 2.0 §5.2; the sign-in document)",
			run:  checkAccountsOrder},
		{id: "cred-protect-rk", title: "credProtect level 3 hides a credential without UV", destructive: true, ctap2: true,
			need: "a credential registered with userVerificationRequired is not found without user verification (CTAP 2.1 §12.1)",
			run:  checkCredProtectRK},
		{id: "capacity", title: "Room for accounts", destructive: true, ctap2: true,
			need: "each account on the key takes a resident credential; Microsoft recommends at most 20 passkeys per user, and a full key refuses new accounts (key-full)",
			run:  checkCapacity},
		{id: "cred-mgmt", title: "Credential management", ctap2: true,
			need: "not needed by Windows sign-in; lets tools list and delete the accounts on the key", run: checkCredMgmt},
		{id: "bio", title: "Fingerprint enrolment", ctap2: true,
			need: "Settings › Manage enrols fingerprints on keys with bioEnroll; keys without a sensor use the PIN", run: checkBio},
	}
}

// skipReason says why a check cannot run, "" when it can.
func (s *session) skipReason(c checkDef) string {
	switch {
	case c.ctap2 && !s.hasCTAP2():
		return "the key does not speak CTAP2"
	case c.destructive && !s.o.Destructive:
		return "it changes what is on the key (reset, a PIN, credentials): run with --destructive, which erases the key"
	}
	return ""
}

func checkCTAPHID(_ context.Context, s *session, c *Check) {
	caps := []string{}
	for _, x := range []struct {
		bit  byte
		name string
	}{{ctaphid.CapWink, "WINK"}, {ctaphid.CapCBOR, "CBOR"}, {ctaphid.CapNMsg, "NMSG"}} {
		if s.init.Capabilities&x.bit != 0 {
			caps = append(caps, x.name)
		}
	}
	c.Observed = fmt.Sprintf("CTAPHID protocol %d, device version %d.%d.%d, capabilities %s",
		s.init.ProtocolVersion, s.init.Major, s.init.Minor, s.init.Build, strings.Join(caps, "|"))
	switch {
	case s.init.ProtocolVersion != 2:
		c.Status = Fail
		c.Details = append(c.Details, "CTAPHID protocol version 2 is the only one")
	case s.init.Capabilities&ctaphid.CapCBOR == 0:
		c.Status = Fail
		c.Details = append(c.Details, "no CBOR capability: a CTAP1/U2F-only key")
	default:
		c.Status = Pass
	}
}

func checkCTAP2(_ context.Context, s *session, c *Check) {
	if s.info == nil {
		c.Status, c.Observed = Fail, "the key answers no getInfo"
		return
	}
	c.Observed = "versions " + strings.Join(s.info.Versions, ", ")
	c.Status = Fail
	if s.hasVersion(ctap.VersionFIDO20) || s.hasVersion(ctap.VersionFIDO21) {
		c.Status = Pass
	}
	if len(s.info.Extensions) > 0 {
		c.Details = append(c.Details, "extensions "+strings.Join(s.info.Extensions, ", "))
	}
}

func checkCTAP21(_ context.Context, s *session, c *Check) {
	switch {
	case s.hasVersion(ctap.VersionFIDO21):
		c.Status, c.Observed = Pass, "FIDO_2_1"
	case s.hasVersion(ctap.VersionFIDO21Pre):
		c.Status, c.Observed = Pass, "FIDO_2_1_PRE (Windows uses the preview commands 0x40 and 0x41)"
	default:
		c.Status, c.Observed = Warn, "CTAP 2.0 only: Settings › Manage cannot change the PIN or reset this key"
	}
}

func checkAAGUID(_ context.Context, s *session, c *Check) {
	c.Observed = "AAGUID " + fmt.Sprintf("%x", s.info.AAGUID)
	if len(s.info.AAGUID) == 16 {
		c.Observed = "AAGUID " + keyAAGUID(s)
	}
	switch {
	case len(s.info.AAGUID) != 16:
		c.Status = Fail
	case slices.Equal(s.info.AAGUID, make([]byte, 16)):
		c.Status = Warn
		c.Details = append(c.Details, "all zero: Entra ID cannot tell this model apart in an allow list or block list")
	default:
		c.Status = Pass
	}
}

func keyAAGUID(s *session) string {
	var a [16]byte
	copy(a[:], s.info.AAGUID)
	h := fmt.Sprintf("%x", a)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func checkRK(_ context.Context, s *session, c *Check) {
	rk, _ := s.option("rk")
	if !rk {
		c.Status, c.Observed = Fail, `getInfo option "rk" is not true: no discoverable credentials`
		return
	}
	c.Status, c.Observed = Pass, `option "rk" true`
	if r := s.info.RemainingDiscoverableCredentials; r != nil {
		c.Details = append(c.Details, fmt.Sprintf("remainingDiscoverableCredentials %d", *r))
	}
}

func checkUV(_ context.Context, s *session, c *Check) {
	pin, hasPIN := s.option("clientPin")
	uv, hasUV := s.option("uv")
	var parts []string
	if hasPIN {
		parts = append(parts, fmt.Sprintf("clientPin (%s)", map[bool]string{true: "a PIN is set", false: "no PIN set yet"}[pin]))
	}
	if hasUV {
		parts = append(parts, fmt.Sprintf("built-in uv (%s)", map[bool]string{true: "enrolled", false: "nothing enrolled"}[uv]))
	}
	if len(parts) == 0 {
		c.Status, c.Observed = Fail, "neither clientPin nor uv in getInfo: no user verification"
		return
	}
	c.Status, c.Observed = Pass, strings.Join(parts, ", ")
}

func checkPINProtocols(ctx context.Context, s *session, c *Check) {
	if len(s.info.PinUvAuthProtocols) == 0 {
		if _, ok := s.option("clientPin"); !ok {
			c.Status, c.Observed = Info, "no PIN/UV auth protocol: the key has no PIN"
			return
		}
	}
	protos := slices.Clone(s.info.PinUvAuthProtocols)
	if len(protos) == 0 {
		protos = []uint64{1} // CTAP 2.0 keys may leave the list out
	}
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	var works, parts []string
	for _, v := range protos {
		req, _ := ctap.Marshal(&ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(v), SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)})
		resp, err := cn.hid.CBOR(ctx, append([]byte{byte(ctap.CmdClientPIN)}, req...))
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%d: %v", v, err))
		case len(resp) == 0 || resp[0] != 0:
			parts = append(parts, fmt.Sprintf("%d: getKeyAgreement answered %s", v, statusName(resp)))
		default:
			var r ctap.ClientPINResponse
			if ctap.DecMode().Unmarshal(resp[1:], &r) != nil {
				parts = append(parts, fmt.Sprintf("%d: unreadable getKeyAgreement answer", v))
				continue
			}
			if k, err := cose.Unmarshal(r.KeyAgreement); err != nil || k.Curve != cose.CurveP256 {
				parts = append(parts, fmt.Sprintf("%d: the key agreement is not a P-256 key", v))
				continue
			}
			works = append(works, fmt.Sprint(v))
			parts = append(parts, fmt.Sprintf("%d: key agreement works", v))
		}
	}
	c.Observed = strings.Join(parts, "; ")
	c.Status = Fail
	if len(works) > 0 {
		c.Status = Pass
	}
}

func statusName(resp []byte) string {
	if len(resp) == 0 {
		return "nothing"
	}
	return ctap.Status(resp[0]).String()
}

func checkProcessing(_ context.Context, s *session, c *Check) {
	c.Observed = fmt.Sprintf("getInfo answered in %s", ms(s.infoAt))
	switch {
	case s.infoAt >= 500*time.Millisecond:
		c.Status = Warn
		c.Details = append(c.Details, "every answer this slow needs KEEPALIVEs to keep Windows waiting")
	default:
		c.Status = Pass
	}
}

func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// checkErrors sends what a broken host might: an unknown command, CBOR that is not CBOR, and an
// assertion for a site the key has nothing for; each must get an error, not silence.
func checkErrors(ctx context.Context, s *session, c *Check) {
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	cases := []struct {
		what string
		req  []byte
		want []ctap.Status
	}{
		{"unknown command 0x3f", []byte{0x3f}, []ctap.Status{ctap.ErrInvalidCommand}},
		{"getAssertion with a truncated CBOR map", []byte{byte(ctap.CmdGetAssertion), 0xa2, 0x01}, []ctap.Status{ctap.ErrInvalidCBOR, ctap.ErrInvalidLength, ctap.ErrInvalidParameter}},
		{"getAssertion for a site the key has nothing for (up=false)", mustGA(probeRP + ".none"), []ctap.Status{ctap.ErrNoCredentials}},
	}
	c.Status = Pass
	for _, x := range cases {
		resp, err := cn.hid.CBOR(ctx, x.req)
		got := statusName(resp)
		if err != nil {
			got = err.Error()
		}
		ok := err == nil && len(resp) > 0 && slices.Contains(x.want, ctap.Status(resp[0]))
		c.Details = append(c.Details, fmt.Sprintf("%s → %s", x.what, got))
		if !ok {
			c.Status = Warn
			c.Details = append(c.Details, fmt.Sprintf("  expected %s", joinStatuses(x.want)))
		}
	}
	if c.Status == Pass {
		c.Observed = "each answered with the expected error"
	} else {
		c.Observed = "some answers are not the errors CTAP names"
	}
}

func joinStatuses(st []ctap.Status) string {
	var n []string
	for _, s := range st {
		n = append(n, s.String())
	}
	return strings.Join(n, " or ")
}

func mustGA(rp string) []byte {
	b, _ := ctap.Marshal(&ctap.GetAssertionRequest{RPID: rp, ClientDataHash: make([]byte, 32), Options: &ctap.Options{UP: ctap.Bool(false)}})
	return append([]byte{byte(ctap.CmdGetAssertion)}, b...)
}

func checkU2F(ctx context.Context, s *session, c *Check) {
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	apdu, _ := u2f.VersionCommand().Encode()
	resp, err := cn.hid.Msg(ctx, apdu)
	c.Status = Info
	if err != nil {
		c.Observed = "no CTAP1/U2F: " + err.Error()
		return
	}
	data, sw, perr := u2f.ParseResponse(resp)
	if perr != nil || sw != u2f.SWNoError {
		c.Observed = fmt.Sprintf("U2F_VERSION answered %04X", uint16(sw))
		return
	}
	c.Observed = fmt.Sprintf("U2F_VERSION %q", data)
	s.pr.U2F = true
}

func checkCredMgmt(_ context.Context, s *session, c *Check) {
	c.Status = Info
	var parts []string
	if v, _ := s.option("credMgmt"); v {
		parts = append(parts, "credMgmt (0x0A)")
	}
	if v, _ := s.option("credentialMgmtPreview"); v {
		parts = append(parts, "credentialMgmtPreview (0x41)")
	}
	if len(parts) == 0 {
		c.Observed = "none"
		return
	}
	c.Observed = strings.Join(parts, ", ")
}

func checkBio(_ context.Context, s *session, c *Check) {
	c.Status = Info
	_, uv := s.option("uv")
	_, bio := s.option("bioEnroll")
	_, pre := s.option("userVerificationMgmtPreview")
	switch {
	case bio || pre:
		c.Observed = "a fingerprint sensor with enrolment"
	case uv:
		c.Observed = "built-in user verification without enrolment commands"
	default:
		c.Observed = "no fingerprint sensor"
	}
}
