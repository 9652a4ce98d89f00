package persona

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Versions a persona may advertise (CTAP 2.1 §6.4 getInfo versions; CTAP 2.2 defines no version
// string of its own: a 2.2 key lists FIDO_2_1).
var knownVersions = []string{"U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1"}

// KnownExtensions are the extensions the authenticator implements; a persona may advertise only
// these. A new extension is added here when package authenticator implements it.
var KnownExtensions = []string{"credProtect", "hmac-secret", "hmac-secret-mc", "credBlob", "largeBlobKey", "minPinLength", "thirdPartyPayment"}

// combinationProblems finds features a persona turns on without what they need: what getInfo
// would advertise and what the key would answer must agree, as on a real key. Each rule says how
// to make the combination consistent.
func (p *Persona) combinationProblems() []Problem {
	var out []Problem
	bad := func(field, format string, a ...any) {
		out = append(out, Problem{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	for i, v := range p.Versions {
		if !slices.Contains(knownVersions, v) {
			bad(fmt.Sprintf("versions[%d]", i), "unknown version %q (known: %s)", v, strings.Join(knownVersions, ", "))
		} else if slices.Index(p.Versions, v) != i {
			bad(fmt.Sprintf("versions[%d]", i), "%s listed twice", v)
		}
	}
	for i, e := range p.Extensions {
		if !slices.Contains(KnownExtensions, e) {
			bad(fmt.Sprintf("extensions[%d]", i), "unknown extension %q (known: %s)", e, strings.Join(KnownExtensions, ", "))
		} else if slices.Index(p.Extensions, e) != i {
			bad(fmt.Sprintf("extensions[%d]", i), "%s listed twice", e)
		}
	}
	for i, v := range p.PinUvAuthProtocols {
		if slices.Index(p.PinUvAuthProtocols, v) != i {
			bad(fmt.Sprintf("pinUvAuthProtocols[%d]", i), "%d listed twice", v)
		}
	}
	if !p.CTAP2 {
		return out
	}

	v21, pre := p.Has("FIDO_2_1"), p.Has("FIDO_2_1_PRE")
	if !p.Has("FIDO_2_0") && !v21 && !pre {
		bad("versions", "lists no FIDO_2_x version, which a ctap2 persona needs (or set ctap2: false for a U2F-only key)")
	}
	if p.U2F != p.Has("U2F_V2") {
		if p.U2F {
			bad("u2f", "true, but versions does not list U2F_V2: add it, or set u2f: false")
		} else {
			bad("versions", "lists U2F_V2, but u2f is false: remove it, or set u2f: true")
		}
	}
	// CTAP 2.1 features: the key answers their commands, but getInfo shows them only on a FIDO_2_1
	// key; on an older one a host would never learn of them (and Windows would not use them).
	if on := turnedOn(map[string]bool{"credMgmt": p.CredMgmt, "authnrCfg": p.Config, "largeBlobs": p.LargeBlobs,
		"pinUvAuthToken": p.PinUvAuthToken, "makeCredUvNotRqd": p.MakeCredUVNotRqd, "selection": p.Selection,
		"enterpriseAttestation": p.EnterpriseAtt}); len(on) > 0 && !v21 {
		bad("versions", "does not list FIDO_2_1, but %s %s: add FIDO_2_1, or set %s",
			strings.Join(on, ", "), isAre(on, "a CTAP 2.1 feature", "CTAP 2.1 features"), falses(on))
	}
	if on := turnedOn(map[string]bool{"credMgmtPreview": p.CredMgmtPre, "bioEnrollPreview": p.BioEnrollPre}); len(on) > 0 && !v21 && !pre {
		bad("versions", "lists neither FIDO_2_1_PRE nor FIDO_2_1, but %s %s: add one, or set %s",
			strings.Join(on, ", "), isAre(on, "a FIDO_2_1_PRE feature", "FIDO_2_1_PRE features"), falses(on))
	}
	if p.BioEnrollPre && !p.BuiltInUV {
		bad("bioEnrollPreview", "fingerprint enrollment needs a sensor: set builtInUv: true, or bioEnrollPreview: false")
	}
	if p.BuiltInUV && (p.MaxFingerprints < 1 || p.EnrollSamples < 1) {
		bad("builtInUv", "a fingerprint sensor needs maxFingerprints and enrollSamples of at least 1 (have %d and %d)",
			p.MaxFingerprints, p.EnrollSamples)
	}
	if slices.Contains(p.PinUvAuthProtocols, 2) && !v21 && !pre {
		bad("pinUvAuthProtocols", "PIN/UV protocol 2 is CTAP 2.1: add FIDO_2_1 to versions, or offer protocol 1 only")
	}
	uv := p.ClientPIN || p.BuiltInUV
	for _, f := range []struct {
		on    bool
		field string
	}{{p.PinUvAuthToken, "pinUvAuthToken"}, {p.CredMgmt, "credMgmt"}} {
		if f.on && !uv {
			bad(f.field, "needs a PIN or built-in user verification (clientPin or builtInUv): turn one on, or set %s: false", f.field)
		}
	}
	if p.HasExtension("hmac-secret-mc") && !p.HasExtension("hmac-secret") {
		bad("extensions", "hmac-secret-mc needs hmac-secret")
	}
	if p.HasExtension("credBlob") && p.MaxCredBlobLength < 32 {
		bad("maxCredBlobLength", "%d, but the credBlob extension needs at least 32 (CTAP 2.1 §12.2)", p.MaxCredBlobLength)
	}
	if p.LargeBlobs && p.MaxSerializedLargeBlobArray < 1024 {
		bad("maxSerializedLargeBlobArray", "%d, but largeBlobs needs at least 1024 (CTAP 2.1 §6.10)", p.MaxSerializedLargeBlobArray)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// turnedOn lists the fields of m that are true, sorted.
func turnedOn(m map[string]bool) []string {
	var on []string
	for _, k := range sortedKeys(m) {
		if m[k] {
			on = append(on, k)
		}
	}
	return on
}

func isAre(fields []string, one, many string) string {
	if len(fields) == 1 {
		return "is " + one
	}
	return "are " + many
}

// falses writes fields as YAML that turns them off: "credMgmt: false, selection: false".
func falses(fields []string) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f + ": false"
	}
	return strings.Join(parts, ", ")
}
