package mutation

import "github.com/fidolab/fidolab/authenticator/emulator"

// Defect is one way a key can be broken, as a persona (YAML over a built-in persona) or as a fault
// injected into a running key's knobs (emulator.Knobs), or both. A defect Windows would notice
// must turn at least one case of the catalog red; one it would not is listed with the reason.
type Defect struct {
	ID   string // short name, used in the persona name and the docs table
	What string // the defect in words
	// Persona is a persona file's text without its name (e.g. "base: default\nquirks: {…}"); ""
	// keeps the default persona.
	Persona string
	// Knobs, when set, injects the defect as a fault: it edits every key's knobs before the case.
	Knobs func(*emulator.Knobs)
	// Visible says whether Windows notices the defect. For an invisible one, Why says why not.
	Visible bool
	Why     string
	// Cause is what every case that catches the defect must say about the key (part of its
	// key-incompatible cause): the report names the defect, not only a difference.
	Cause string
	// NotRun says why a defect a knob could express is not injected.
	NotRun string
}

// Defects are the key defects the catalog is measured against. Each issue-11 quirk and each knob
// fault a lab can set on a served key appears here; capability gaps are expressed as persona
// fields. Visible defects must be caught; invisible ones that can be expressed must survive (a
// model that flags them would be stricter than Windows).
var Defects = []Defect{
	// Firmware behaviour (persona quirks).
	{ID: "hmac-secret-per-boot", What: "hmac-secret output changes after every power cycle (CredRandom not persisted)",
		Persona: "base: default\nquirks: {hmacSecretPerBoot: true}", Visible: true, Cause: "hmac-secret output changes after a power cycle"},
	{ID: "discoverable-ignores-rp-id", What: "getAssertion without allowList returns every relying party's discoverable credentials",
		Persona: "base: default\nquirks: {discoverableIgnoresRpId: true}", Visible: true, Cause: "other sites' discoverable credentials"},
	{ID: "oldest-first", What: "discoverable credentials oldest first instead of newest first",
		Persona: "base: default\nquirks: {oldestFirst: true}", Visible: true, Cause: "credential ordering"},
	{ID: "reset-window-5s", What: "authenticatorReset allowed only 5 s after power-up instead of 10 s",
		Persona: "base: default\nquirks: {resetWindowSeconds: 5}", Visible: true, Cause: "refuses authenticatorReset 7 s after power-up"},
	{ID: "reset-window-30s", What: "authenticatorReset allowed 30 s after power-up instead of 10 s",
		Persona: "base: default\nquirks: {resetWindowSeconds: 30}", Visible: true, Cause: "accepts authenticatorReset 11 s after power-up"},
	{ID: "slow-no-keepalive", What: "1.5 s per request without CTAPHID_KEEPALIVE",
		Persona: "base: default\nquirks: {noKeepalive: true, processingDelayMs: 1500}",
		Knobs:   func(k *emulator.Knobs) { k.Keepalive, k.ProcessingDelayMs = false, 1500 }, Visible: true, Cause: "stays silent longer than Windows waits"},
	{ID: "slow-keepalive-800ms", What: "1.5 s per request with a KEEPALIVE only every 800 ms",
		Knobs: func(k *emulator.Knobs) { k.KeepaliveIntervalMs, k.ProcessingDelayMs = 800, 1500 }, Visible: true, Cause: "stays silent longer than Windows waits"},
	{ID: "touch-sensor-dead", What: "the touch sensor never registers (every user-presence request times out)",
		Knobs: func(k *emulator.Knobs) { k.User = "timeout" }, Visible: true, Cause: "timed out waiting for the user"},
	{ID: "spurious-error", What: "the first CBOR request is answered CTAP1_ERR_OTHER",
		Knobs: func(k *emulator.Knobs) { k.FailNext = []string{"CTAP1_ERR_OTHER"} }, Visible: true, Cause: "CTAP1_ERR_OTHER"},

	// Field reports (docs/scenarios.md, known field failures).
	{ID: "reset-refused", What: "authenticatorReset refused by design (CTAP2_ERR_OPERATION_DENIED), as on Mooltipass Mini BLE",
		Persona: "base: default\nquirks: {resetRefused: true}", Visible: true, Cause: "refuses authenticatorReset"},
	{ID: "pin-token-single-use", What: "the PIN token serves one request only, even an up=false pre-flight (FIDO2Applet's default)",
		Persona: "base: default\nquirks: {pinTokenSingleUse: true}", Visible: true, Cause: "PIN_AUTH_INVALID"},
	{ID: "up-false-refused", What: "getAssertion with up=false answered CTAP2_ERR_INVALID_OPTION",
		Persona: "base: default\nquirks: {upFalseRefused: true}", Visible: true, Cause: "up=false"},
	{ID: "up-false-ignored", What: "getAssertion with up=false asks for a touch and sets the UP flag (a silent probe prompts; a pre-flight prompts twice)",
		Persona: "base: default\nquirks: {upFalseIgnored: true}", Visible: true, Cause: "UP flag"},
	{ID: "bad-signature-hmac-secret", What: "the assertion signature does not verify whenever hmac-secret is requested (Solo 1, 2019)",
		Persona: "base: default\nquirks: {badSignatureWithHmacSecret: true}",
		Knobs:   func(k *emulator.Knobs) { k.BadSignatureWithHMACSecret = true }, Visible: true, Cause: "asked for hmac-secret"},
	{ID: "long-user-refused", What: "makeCredential with a user name over 64 bytes refused (CTAP2_ERR_PIN_AUTH_INVALID) instead of truncated",
		Persona: "base: default\nquirks: {longUserFieldsRefused: true}", Visible: true, Cause: "fresh PIN token"},

	// Attestation and capacities.
	{ID: "attestation-none", What: "attestation format none (no statement)",
		Persona: "base: default\nattestation: none", Visible: true, Cause: "attestation refused"},
	{ID: "attestation-self", What: "self attestation (packed, signed by the credential key, no certificate)",
		Persona: "base: default\nattestation: packed-self", Visible: true, Cause: "attestation refused"},
	{ID: "resident-capacity-1", What: "room for one resident credential",
		Persona: "base: default\nresidentCapacity: 1", Visible: true, Cause: "store full"},
	{ID: "min-pin-length-6", What: "minimum PIN length 6 (the catalog's users type 4 digits)",
		Persona: "base: default\nminPinLength: 6", Visible: true, Cause: "minimum PIN length 6"},

	// Capabilities Windows needs (getInfo).
	{ID: "no-hmac-secret", What: "no hmac-secret extension",
		Persona: "base: default\nextensions: [credProtect, credBlob, largeBlobKey, minPinLength]", Visible: true, Cause: "hmac-secret"},
	{ID: "no-resident-keys", What: "no resident (discoverable) credentials",
		Persona: "base: default\nresidentKeys: false\ncredMgmt: false\ncredMgmtPreview: false\nlargeBlobs: false", Visible: true, Cause: "resident keys"},
	{ID: "no-client-pin", What: "no client PIN (fingerprint only)",
		Persona: "base: default\nclientPin: false\npinUvAuthProtocols: []", Visible: true, Cause: "clientPin"},
	{ID: "u2f-only", What: "CTAP1/U2F only", Persona: "base: u2f", Visible: true, Cause: "CTAP1/U2F only"},
	{ID: "no-fingerprint", What: "no fingerprint sensor (Manage cannot enrol biometrics)",
		Persona: "base: default\nbuiltInUv: false\nbioEnrollPreview: false", Visible: true, Cause: "fingerprint enrolment"},
	{ID: "eddsa-only", What: "EdDSA only (Entra asks for ES256 or RS256)",
		Persona: "base: default\nalgorithms: [-8]", Visible: true, Cause: "an algorithm Entra asks for"},

	// Invisible to Windows: expressible, so the test checks they survive.
	{ID: "slow-with-keepalive", What: "1.5 s per request, with keepalives",
		Persona: "base: default\nquirks: {processingDelayMs: 1500}",
		Knobs:   func(k *emulator.Knobs) { k.ProcessingDelayMs = 1500 },
		Why:     "Windows waits as long as KEEPALIVEs keep coming (every 100 ms here)"},
	{ID: "pin-protocol-1-only", What: "PIN/UV auth protocol 1 only", Persona: "base: default\npinUvAuthProtocols: [1]",
		Why: "Windows speaks protocol 1 as well as 2"},
	{ID: "no-eddsa", What: "no EdDSA", Persona: "base: default\nalgorithms: [-7]",
		Why: "Entra asks for ES256 (-7) or RS256 (-257) only"},
	{ID: "no-large-blobs", What: "no large blobs", Persona: "base: default\nlargeBlobs: false",
		Why: "Windows sign-in and Entra registration never use large blobs"},
	{ID: "no-credential-management", What: "no credential management", Persona: "base: default\ncredMgmt: false\ncredMgmtPreview: false",
		Why: "the document's Manage page changes the PIN, enrols fingerprints and resets; it lists no credentials"},
	{ID: "no-enterprise-attestation", What: "no enterprise attestation", Persona: "base: default\nenterpriseAttestation: false",
		Why: "Entra asks for direct attestation, never enterprise"},
	{ID: "no-u2f", What: "no CTAP1/U2F", Persona: "base: default\nu2f: false\nversions: [FIDO_2_0, FIDO_2_1_PRE, FIDO_2_1]",
		Why: "Windows sign-in speaks CTAP2 only"},
	{ID: "small-messages", What: "maxMsgSize 1024", Persona: "base: default\nmaxMsgSize: 1024",
		Why: "Windows' requests fit in 1024 bytes"},

	// Visible, but not injected.
	{ID: "hung-request", What: "a request is never answered, with keepalives forever (the silent knob)", Visible: true,
		NotRun: "an in-process key that waits for ever never moves its virtual clock, so no timeout comes; the model has no " +
			"limit on a ceremony while keepalives keep coming (Windows' is not published), so the case would end at the runner's case timeout"},

	// Invisible and not expressible as a persona or a knob (found by mutating the source).
	{ID: "credprotect-ignored", What: "credProtect level stored but not enforced",
		Why: "Windows and Entra always ask for user verification, which every credProtect level admits"},
	{ID: "uv-not-required-for-mc", What: "makeCredential accepts rk without user verification",
		Why: "Windows always sends a pinUvAuthParam (or uv) when it registers"},
}
