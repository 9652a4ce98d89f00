package replay

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
)

// Diff is one way the new key's answer differs from the recorded key's.
type Diff struct {
	// Field is where: "status", "authData.flags.UV", "4.options.clientPin" (CTAP map keys).
	Field    string `json:"field"`
	Recorded string `json:"recorded"`
	Replayed string `json:"replayed"`
	// Note explains a difference that needs explaining (a state-dependent option).
	Note string `json:"note,omitempty"`
}

func (d Diff) String() string {
	s := fmt.Sprintf("%s: recorded %s, replayed %s", d.Field, d.Recorded, d.Replayed)
	if d.Note != "" {
		s += " (" + d.Note + ")"
	}
	return s
}

// outcome collects what comparing one answer found.
type outcome struct {
	diffs  []Diff
	checks []string // what was verified rather than compared ("signature verified")
	notes  []string
}

func (o *outcome) diff(field, rec, got, note string) {
	o.diffs = append(o.diffs, Diff{Field: field, Recorded: rec, Replayed: got, Note: note})
}
func (o *outcome) check(s string) { o.checks = append(o.checks, s) }
func (o *outcome) note(s string)  { o.notes = append(o.notes, s) }

// rule says how a member of an answer is compared.
type rule int

const (
	exact    rule = iota
	presence      // present in both; the value belongs to the key (its state, its randomness)
	length        // a byte string whose length must match (a secret, a key-made identifier)
	special       // compared by the command's own code
)

// stateOptions are getInfo options that follow the key's state rather than its model.
var stateOptions = map[string]bool{"clientPin": true, "uv": true, "bioEnroll": true, "userVerificationMgmtPreview": true,
	"ep": true, "alwaysUv": true, "makeCredUvNotRqd": true}

// rules gives, per command, the rule of each member path ("1", "4.rk", "1.id"); "*" matches any
// key at that level. Members without a rule are compared exactly.
var rules = map[ctap.Command]map[string]rule{
	ctap.CmdGetInfo:          {"20": presence},
	ctap.CmdClientPIN:        {"1": special, "2": special},
	ctap.CmdMakeCredential:   {"2": special, "3": special, "5": length},
	ctap.CmdGetAssertion:     {"1.id": special, "2": special, "3": special, "7": length},
	ctap.CmdGetNextAssertion: {"1.id": special, "2": special, "3": special, "7": length},
	ctap.CmdCredentialManagement: {"7.id": special, "8": special, "11": length,
		"2": presence},
	ctap.CmdCredentialManagementPre: {"7.id": special, "8": special, "11": length, "2": presence},
	ctap.CmdBioEnrollment:           {"4": presence, "7.*.1": presence},
	ctap.CmdBioEnrollmentPre:        {"4": presence, "7.*.1": presence},
}

func ruleFor(cmd ctap.Command, path string) rule {
	rs := rules[cmd]
	if r, ok := rs[path]; ok {
		return r
	}
	parts := strings.Split(path, ".")
	for pat, r := range rs {
		pp := strings.Split(pat, ".")
		if len(pp) != len(parts) {
			continue
		}
		match := true
		for i := range pp {
			if pp[i] != "*" && pp[i] != parts[i] {
				match = false
				break
			}
		}
		if match {
			return r
		}
	}
	return exact
}

// walk compares two decoded values member by member under cmd's rules.
func walk(cmd ctap.Command, path string, rec, got any, o *outcome) {
	switch ruleFor(cmd, path) {
	case special:
		return
	case presence:
		if (rec == nil) != (got == nil) {
			o.diff(path, show(rec), show(got), "")
		}
		return
	case length:
		rb, _ := rec.([]byte)
		gb, _ := got.([]byte)
		if (rec == nil) != (got == nil) || len(rb) != len(gb) {
			o.diff(path, lenOf(rec), lenOf(got), "")
		}
		return
	}
	rm, rok := rec.(map[any]any)
	gm, gok := got.(map[any]any)
	if rok && gok {
		seen := map[string]bool{}
		for _, k := range sortedKeys(rm) {
			name := keyName(k)
			seen[name] = true
			gv, _ := get(gm, normKey(k))
			walk(cmd, join(path, name), rm[k], gv, o)
		}
		for _, k := range sortedKeys(gm) {
			if !seen[keyName(k)] {
				walk(cmd, join(path, keyName(k)), nil, gm[k], o)
			}
		}
		return
	}
	ra, rok := rec.([]any)
	ga, gok := got.([]any)
	if rok && gok && len(ra) == len(ga) {
		for i := range ra {
			walk(cmd, join(path, fmt.Sprint(i)), ra[i], ga[i], o)
		}
		return
	}
	if !equal(rec, got) {
		note := ""
		if cmd == ctap.CmdGetInfo && strings.HasPrefix(path, "4.") && stateOptions[strings.TrimPrefix(path, "4.")] {
			note = "this option follows the key's state (a PIN, fingerprints, settings), not its model"
		}
		if cmd == ctap.CmdClientPIN && (path == "3" || path == "5") {
			note = "retries left follow the key's history"
		}
		o.diff(path, show(rec), show(got), note)
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func lenOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "(absent)"
	case []byte:
		return fmt.Sprintf("%d bytes", len(x))
	}
	return show(v)
}

// compareCOSE compares two COSE keys by kind (type, algorithm, curve) and size, not by value.
func compareCOSE(path string, rec, got any, o *outcome) (cose.Key, bool) {
	gm, _ := got.(map[any]any)
	rm, _ := rec.(map[any]any)
	if gm == nil {
		o.diff(path, show(rec), show(got), "")
		return cose.Key{}, false
	}
	for _, k := range []int{1, 3, -1} {
		rv, _ := get(rm, k)
		gv, _ := get(gm, k)
		if rm != nil && !equal(rv, gv) {
			o.diff(fmt.Sprintf("%s.%d", path, k), show(rv), show(gv), "")
		}
	}
	for _, k := range []int{-2, -3} {
		rv := getBytes(rm, k)
		gv := getBytes(gm, k)
		if rm != nil && len(rv) != len(gv) {
			o.diff(fmt.Sprintf("%s.%d", path, k), lenOf(rv), lenOf(gv), "")
		}
	}
	enc, err := encode(gm)
	if err != nil {
		return cose.Key{}, false
	}
	k, err := cose.Unmarshal(enc)
	if err != nil {
		o.diff(path, "a valid COSE key", "invalid: "+err.Error(), "")
		return cose.Key{}, false
	}
	return k, true
}

// compareCredID compares a credential ID in an answer through the mapping: the new key's ID
// must be the counterpart of the recorded one; a first sighting teaches the mapping.
func (s *session) compareCredID(path string, rec, got []byte, o *outcome) {
	switch {
	case rec == nil && got == nil:
		return
	case (rec == nil) != (got == nil):
		o.diff(path, lenOf(rec), lenOf(got), "")
		return
	}
	n, ok := s.newCred(rec)
	switch {
	case !ok:
		s.mapCred(rec, got)
	case !bytes.Equal(n, got):
		o.diff(path, "this key's counterpart of "+short(rec)+" ("+short(n)+")", short(got),
			"the key answered with another credential than the recorded key did")
	}
}

// compareFlags compares authenticator data flags bit by bit.
func compareFlags(path string, rec, got byte, o *outcome) {
	for _, f := range []struct {
		bit  byte
		name string
	}{{ctap.FlagUP, "UP"}, {ctap.FlagUV, "UV"}, {ctap.FlagBE, "BE"}, {ctap.FlagBS, "BS"}, {ctap.FlagAT, "AT"}, {ctap.FlagED, "ED"}} {
		if rec&f.bit != got&f.bit {
			o.diff(path+"."+f.name, fmt.Sprint(rec&f.bit != 0), fmt.Sprint(got&f.bit != 0), "")
		}
	}
}

// compareAuthData compares authenticator data: the same relying party, flags and extensions,
// a counter that went up, the same AAGUID and kind of public key. It returns the new key's
// credential ID (from attested data, or credID) and the parsed data.
func (s *session) compareAuthData(path string, rec, got []byte, credID []byte, p *prepared, o *outcome) (*ctap.AuthData, []byte) {
	ga, err := ctap.ParseAuthData(got)
	if err != nil {
		o.diff(path, "authenticator data", "unparsable: "+err.Error(), "")
		return nil, nil
	}
	ra, rerr := ctap.ParseAuthData(rec)
	if rerr != nil {
		o.note("recorded authData is unreadable (" + rerr.Error() + "): compared nothing in it")
		return ga, credID
	}
	if ra.RPIDHash != ga.RPIDHash {
		o.diff(path+".rpIdHash", hex.EncodeToString(ra.RPIDHash[:4])+"…", hex.EncodeToString(ga.RPIDHash[:4])+"…", "")
	}
	compareFlags(path+".flags", ra.Flags, ga.Flags, o)
	if ga.Attested != nil {
		credID = ga.Attested.CredentialID
		if ra.Attested != nil {
			if ra.Attested.AAGUID != ga.Attested.AAGUID {
				o.diff(path+".aaguid", hex.EncodeToString(ra.Attested.AAGUID[:]), hex.EncodeToString(ga.Attested.AAGUID[:]), "another model of key")
			}
			s.mapCred(ra.Attested.CredentialID, ga.Attested.CredentialID)
			rk, _ := decodeAny(ra.Attested.PublicKey)
			gk, _ := decodeAny(ga.Attested.PublicKey)
			if pub, ok := compareCOSE(path+".credentialPublicKey", rk, gk, o); ok {
				s.pub[hex.EncodeToString(credID)] = pub
			}
		}
	}
	if credID != nil {
		h := hex.EncodeToString(credID)
		if last, ok := s.count[h]; ok && ga.SignCount != 0 && ga.SignCount <= last {
			o.diff(path+".signCount", fmt.Sprintf("more than %d", last), fmt.Sprint(ga.SignCount), "the counter must increase")
		}
		s.count[h] = ga.SignCount
	}
	s.compareExtensions(path+".extensions", ra.Extensions, ga.Extensions, p, o)
	return ga, credID
}

// compareExtensions compares authData extension outputs; hmac-secret outputs are checked by
// decrypting them with the replay's own key agreement.
func (s *session) compareExtensions(path string, rec, got []byte, p *prepared, o *outcome) {
	if len(rec) == 0 && len(got) == 0 {
		return
	}
	rm, _ := decodeMap(rec)
	gm, err := decodeMap(got)
	if len(got) > 0 && err != nil {
		o.diff(path, "a CBOR map", "unreadable: "+err.Error(), "")
		return
	}
	keys := map[string]bool{}
	for k := range rm {
		keys[keyName(k)] = true
	}
	for k := range gm {
		keys[keyName(k)] = true
	}
	for _, k := range sortedStrings(keys) {
		rv, rok := rm[k]
		gv, gok := gm[k]
		switch {
		case rok != gok:
			o.diff(path+"."+k, show(rv), show(gv), "")
		case k == "hmac-secret" || k == "hmac-secret-mc":
			rb, risBytes := rv.([]byte)
			gb, gisBytes := gv.([]byte)
			if !risBytes || !gisBytes {
				if !equal(rv, gv) {
					o.diff(path+"."+k, show(rv), show(gv), "")
				}
				continue
			}
			if len(rb) != len(gb) {
				o.diff(path+"."+k, lenOf(rb), lenOf(gb), "")
				continue
			}
			if p != nil && p.hmac != nil {
				out, err := p.hmac.proto.Decrypt(p.hmac.secret, gb)
				switch {
				case err != nil:
					o.diff(path+"."+k, "an output encrypted for the host", "does not decrypt: "+err.Error(), "")
				case len(out) != p.hmacSalt:
					o.diff(path+"."+k, fmt.Sprintf("%d bytes of output", p.hmacSalt), fmt.Sprintf("%d bytes", len(out)), "")
				default:
					o.check(k + " output decrypted with the replay's key agreement")
				}
			}
		default:
			if !equal(rv, gv) {
				o.diff(path+"."+k, show(rv), show(gv), "")
			}
		}
	}
}

func sortedStrings(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
