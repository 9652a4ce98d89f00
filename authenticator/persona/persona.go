// Package persona describes what kind of key the emulator pretends to be: the getInfo it
// advertises, its AAGUID and attestation, its capacities and its quirks. A persona is data;
// the built-in ones are embedded YAML files and users add their own as files of the same form.
package persona

import (
	"embed"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Attestation kinds a persona can produce at makeCredential.
const (
	AttestationBatch = "packed-batch" // packed with an x5c chain to the persona's own test CA
	AttestationSelf  = "packed-self"  // packed, signed by the credential key itself
	AttestationNone  = "none"
)

// Persona is everything that distinguishes one model of key from another.
type Persona struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	AAGUID      AAGUID `yaml:"aaguid"`

	// CTAP2 is false for a CTAP1/U2F-only key: CTAPHID_CBOR is then an unknown command.
	CTAP2 bool `yaml:"ctap2"`
	// U2F enables CTAP1 over CTAPHID_MSG.
	U2F bool `yaml:"u2f"`

	Versions           []string `yaml:"versions"`
	Extensions         []string `yaml:"extensions"`
	PinUvAuthProtocols []int    `yaml:"pinUvAuthProtocols"`
	Algorithms         []int    `yaml:"algorithms"` // COSE algorithm identifiers, preferred first

	// Features map to getInfo options and to the commands the key answers.
	ClientPIN        bool `yaml:"clientPin"`
	ResidentKeys     bool `yaml:"residentKeys"`
	BuiltInUV        bool `yaml:"builtInUv"`       // fingerprint sensor: "uv" option and bioEnroll
	CredMgmt         bool `yaml:"credMgmt"`        // 0x0A (needs FIDO_2_1)
	CredMgmtPre      bool `yaml:"credMgmtPreview"` // 0x41 (FIDO_2_1_PRE)
	BioEnrollPre     bool `yaml:"bioEnrollPreview"`
	LargeBlobs       bool `yaml:"largeBlobs"`
	Config           bool `yaml:"authnrCfg"`
	EnterpriseAtt    bool `yaml:"enterpriseAttestation"` // capable of it (ep option present)
	PinUvAuthToken   bool `yaml:"pinUvAuthToken"`
	MakeCredUVNotRqd bool `yaml:"makeCredUvNotRqd"`
	Selection        bool `yaml:"selection"`

	// CTAP 2.2 features (CTAP 2.2 §6.4 authenticatorGetInfo); CTAP 2.2 defines no version string,
	// so a persona with them lists FIDO_2_1. thirdPartyPayment is an extension (Extensions).
	PerCredMgmtRO          bool     `yaml:"perCredMgmtRO"`                // persistent pinUvAuthToken (pcmr): read-only credMgmt across power cycles
	LongTouchForReset      bool     `yaml:"longTouchForReset"`            // authenticatorReset needs the key held, not a tap
	TransportsForReset     []string `yaml:"transportsForReset,omitempty"` // transports authenticatorReset is accepted over
	PinComplexityPolicy    bool     `yaml:"pinComplexityPolicy"`          // setPIN/changePIN refuse trivial PINs
	PinComplexityPolicyURL string   `yaml:"pinComplexityPolicyURL"`       // where the policy is explained

	MaxMsgSize                  int `yaml:"maxMsgSize"`
	MaxCredentialCountInList    int `yaml:"maxCredentialCountInList"`
	MaxCredentialIDLength       int `yaml:"maxCredentialIdLength"`
	ResidentCapacity            int `yaml:"residentCapacity"`
	MaxCredBlobLength           int `yaml:"maxCredBlobLength"`
	MaxSerializedLargeBlobArray int `yaml:"maxSerializedLargeBlobArray"`
	MaxRPIDsForSetMinPINLength  int `yaml:"maxRPIDsForSetMinPINLength"`
	MinPINLength                int `yaml:"minPinLength"`
	FirmwareVersion             int `yaml:"firmwareVersion"`
	MaxFingerprints             int `yaml:"maxFingerprints"`
	EnrollSamples               int `yaml:"enrollSamples"`

	Attestation string `yaml:"attestation"` // packed-batch, packed-self or none
	// AttestationSubject is the batch certificate subject; the CA is generated once per key state.
	AttestationSubject Subject `yaml:"attestationSubject"`

	HID    HID    `yaml:"hid"`
	Quirks Quirks `yaml:"quirks"`
}

// Subject names a certificate (FIDO packed batch certificates need C, O, OU and CN).
type Subject struct {
	Country            string `yaml:"c"`
	Organization       string `yaml:"o"`
	OrganizationalUnit string `yaml:"ou"`
	CommonName         string `yaml:"cn"`
}

// HID is how the key shows itself on USB.
type HID struct {
	VendorID     uint16 `yaml:"vendorId"`
	ProductID    uint16 `yaml:"productId"`
	Manufacturer string `yaml:"manufacturer"`
	Product      string `yaml:"product"`
	Serial       string `yaml:"serial"`
	DeviceMajor  byte   `yaml:"deviceMajor"`
	DeviceMinor  byte   `yaml:"deviceMinor"`
	DeviceBuild  byte   `yaml:"deviceBuild"`
	Wink         bool   `yaml:"wink"`
}

// Quirks are deliberate deviations seen on real keys, for compatibility testing. OldestFirst,
// ResetWindowSeconds, PINRetriesWithoutPIN, HMACSecretPerBoot and DiscoverableIgnoresRPID are the
// firmware's behaviour; NoKeepalive and ProcessingDelayMs are the initial values of a running key's
// knobs (emulator.Knobs), which the control API may change.
type Quirks struct {
	// OldestFirst returns discoverable credentials oldest first instead of newest first.
	OldestFirst bool `yaml:"oldestFirst"`
	// NoKeepalive never sends CTAPHID_KEEPALIVE (Windows gives up on such keys after ~0.5 s):
	// the keepalive knob starts off.
	NoKeepalive bool `yaml:"noKeepalive"`
	// ResetWindowSeconds overrides the 10 s reset-after-power-up window (0 = spec default).
	ResetWindowSeconds int `yaml:"resetWindowSeconds"`
	// ProcessingDelayMs adds work time to every CBOR request (a slow secure element): the
	// processingDelayMs knob starts at it.
	ProcessingDelayMs int `yaml:"processingDelayMs"`
	// HMACSecretPerBoot: the hmac-secret output changes after every power cycle, as on a key
	// that keeps CredRandom in RAM instead of persisting it (Windows' offline cache then no
	// longer opens after the key was unplugged).
	HMACSecretPerBoot bool `yaml:"hmacSecretPerBoot"`
	// DiscoverableIgnoresRPID: a getAssertion without allowList returns the discoverable
	// credentials of every relying party, not only the one asked for.
	DiscoverableIgnoresRPID bool `yaml:"discoverableIgnoresRpId"`
	// PINRetriesWithoutPIN answers getPINRetries on a key without a PIN with the retry counter
	// (8), as OpenSK, trussed's fido-authenticator (Solo 2, Nitrokey 3), pico-fido and SoloKeys
	// Solo 1 do. Without it the key answers CTAP2_ERR_PIN_NOT_SET, as current YubiKey firmware
	// does and python-fido2 2.x's device tests expect (docs/personas.md).
	PINRetriesWithoutPIN bool `yaml:"pinRetriesWithoutPin"`

	// The field-report quirks (docs/scenarios.md, known field failures): each reproduces a key
	// behaviour a public report tied to a Windows failure.

	// ResetRefused answers every authenticatorReset CTAP2_ERR_OPERATION_DENIED, as a key whose
	// vendor refuses a factory reset from the host by design (mooltipass/minible #110).
	ResetRefused bool `yaml:"resetRefused"`
	// PINTokenSingleUse ends the pinUvAuthToken after one use, even by a getAssertion with up=false,
	// so a browser's pre-flight leaves the real request CTAP2_ERR_PIN_AUTH_INVALID (the default of
	// BryanJacobs/FIDO2Applet, its issue #34).
	PINTokenSingleUse bool `yaml:"pinTokenSingleUse"`
	// UPFalseRefused answers a getAssertion with up=false CTAP2_ERR_INVALID_OPTION instead of a
	// silent assertion (a key that does not implement CTAP's pre-flight).
	UPFalseRefused bool `yaml:"upFalseRefused"`
	// UPFalseIgnored treats a getAssertion with up=false as one with up=true: the key asks for a
	// touch and sets the UP flag, so a silent probe prompts the user and a browser's pre-flight
	// uses up the PIN token (a key that prompts twice).
	UPFalseIgnored bool `yaml:"upFalseIgnored"`
	// BadSignatureWithHMACSecret signs an assertion over the wrong data whenever the hmac-secret
	// extension is requested, so its signature does not verify (solokeys/solo1 #228).
	BadSignatureWithHMACSecret bool `yaml:"badSignatureWithHmacSecret"`
	// LongUserFieldsRefused answers a makeCredential whose user name or display name is longer
	// than 64 bytes CTAP2_ERR_PIN_AUTH_INVALID instead of truncating it as CTAP allows (what
	// makes Windows report 0x8007052E and ask for the PIN again: MichaelGrafnetter/webauthn-interop #26).
	LongUserFieldsRefused bool `yaml:"longUserFieldsRefused"`
}

// AAGUID is a 16-byte authenticator model identifier, written in YAML as a UUID string.
type AAGUID [16]byte

// String formats the AAGUID as a UUID.
func (a AAGUID) String() string {
	h := hex.EncodeToString(a[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ParseAAGUID reads a UUID with or without dashes.
func ParseAAGUID(s string) (AAGUID, error) {
	var a AAGUID
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
	if err != nil || len(b) != 16 {
		return a, fmt.Errorf("aaguid %q: want 32 hex digits", s)
	}
	copy(a[:], b)
	return a, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *AAGUID) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseAAGUID(n.Value)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (a AAGUID) MarshalYAML() (any, error) { return a.String(), nil }

// resetTransports are the AuthenticatorTransport values transportsForReset may list.
var resetTransports = []string{"usb", "nfc", "ble", "smart-card", "hybrid", "internal"}

// validateCTAP22 checks the CTAP 2.2 features: each needs FIDO_2_1, perCredMgmtRO needs the
// credential management it makes read-only and a PIN to obtain it with, and a key served over USB
// must accept reset over USB when it lists transportsForReset at all.
func (p *Persona) validateCTAP22(bad func(string, ...any)) {
	v21 := p.Has("FIDO_2_1")
	need21 := func(what string, on bool) {
		if on && !v21 {
			bad("%s needs versions to include FIDO_2_1 (CTAP 2.2 has no version string of its own)", what)
		}
	}
	need21("perCredMgmtRO", p.PerCredMgmtRO)
	need21("longTouchForReset", p.LongTouchForReset)
	need21("transportsForReset", len(p.TransportsForReset) > 0)
	need21("pinComplexityPolicy", p.PinComplexityPolicy)
	need21("the thirdPartyPayment extension", p.HasExtension("thirdPartyPayment"))
	if p.PerCredMgmtRO && (!p.CredMgmt || !p.ClientPIN) {
		bad("perCredMgmtRO needs credMgmt and clientPin")
	}
	for i, t := range p.TransportsForReset {
		if !slices.Contains(resetTransports, t) {
			bad("transportsForReset: %q is not one of %s", t, strings.Join(resetTransports, ", "))
		}
		if slices.Contains(p.TransportsForReset[:i], t) {
			bad("transportsForReset: %q listed twice", t)
		}
	}
	if len(p.TransportsForReset) > 0 && !slices.Contains(p.TransportsForReset, "usb") {
		bad("transportsForReset must include usb: fidolab keys are reached over USB HID")
	}
	if p.PinComplexityPolicyURL != "" && !p.PinComplexityPolicy {
		bad("pinComplexityPolicyURL without pinComplexityPolicy")
	}
	if len(p.PinComplexityPolicyURL) > 256 {
		bad("pinComplexityPolicyURL longer than 256 bytes")
	}
}

// RSACredentialIDLength is the size of an RS256 or PS256 credential ID: the key's two 1024-bit
// primes sealed with a 14-byte header and a 16-byte tag (package authenticator's format).
const RSACredentialIDLength = 286

// algorithmNames are the COSE algorithms a persona may offer (IANA COSE registry), in the order
// supportedAlgorithms lists them.
var algorithmNames = map[int]string{-7: "ES256", -8: "EdDSA", -35: "ES384", -36: "ES512", -257: "RS256", -37: "PS256"}

// AlgorithmName is the COSE name of algorithm alg (ES256 for -7), or its number.
func AlgorithmName(alg int) string {
	if n, ok := algorithmNames[alg]; ok {
		return n
	}
	return fmt.Sprint(alg)
}

// KnownAlgorithm reports whether a persona may offer COSE algorithm alg (the emulator signs with it).
func KnownAlgorithm(alg int) bool { _, ok := algorithmNames[alg]; return ok }

func supportedAlgorithms() string {
	var s []string
	for _, a := range []int{-7, -8, -35, -36, -257, -37} {
		s = append(s, fmt.Sprintf("%s %d", algorithmNames[a], a))
	}
	return strings.Join(s, ", ")
}

// Has reports whether the persona advertises version v.
func (p *Persona) Has(v string) bool { return slices.Contains(p.Versions, v) }

// HasExtension reports whether the persona supports extension e.
func (p *Persona) HasExtension(e string) bool { return slices.Contains(p.Extensions, e) }

// Validate checks that the persona is self-consistent.
func (p *Persona) Validate() error {
	var errs []Problem
	bad := func(f string, a ...any) { errs = append(errs, Problem{Msg: fmt.Sprintf(f, a...)}) }
	if p.Name == "" {
		bad("name is empty")
	}
	if !p.CTAP2 && !p.U2F {
		bad("neither ctap2 nor u2f is enabled")
	}
	if p.CTAP2 {
		if len(p.Versions) == 0 {
			bad("ctap2 persona without versions")
		}
		if len(p.Algorithms) == 0 {
			bad("no algorithms")
		}
		for i, a := range p.Algorithms {
			if _, ok := algorithmNames[a]; !ok {
				bad("algorithm %d not supported (%s)", a, supportedAlgorithms())
			}
			if slices.Contains(p.Algorithms[:i], a) {
				bad("algorithm %d listed twice", a)
			}
			if (a == -257 || a == -37) && p.MaxCredentialIDLength < RSACredentialIDLength {
				bad("%s credentials carry their 2048-bit key in the credential ID: maxCredentialIdLength %d, want at least %d",
					AlgorithmName(a), p.MaxCredentialIDLength, RSACredentialIDLength)
			}
		}
		for _, v := range p.PinUvAuthProtocols {
			if v != 1 && v != 2 {
				bad("pinUvAuthProtocol %d unknown", v)
			}
		}
		if p.ClientPIN && len(p.PinUvAuthProtocols) == 0 {
			bad("clientPin without pinUvAuthProtocols")
		}
		if p.ResidentKeys && p.ResidentCapacity <= 0 {
			bad("residentKeys with residentCapacity %d", p.ResidentCapacity)
		}
		p.validateCTAP22(bad)
	}
	switch p.Attestation {
	case AttestationBatch, AttestationSelf, AttestationNone:
	default:
		bad("attestation %q: want %s, %s or %s", p.Attestation, AttestationBatch, AttestationSelf, AttestationNone)
	}
	errs = append(errs, p.numberProblems()...)
	errs = append(errs, p.combinationProblems()...)
	if len(errs) > 0 {
		return &ValidationError{Persona: p.Name, Problems: errs}
	}
	return nil
}

//go:embed builtin/*.yaml
var builtinFS embed.FS

// Builtin returns the named built-in persona (a fresh copy each call).
func Builtin(name string) (*Persona, error) {
	b, err := builtinFS.ReadFile(path.Join("builtin", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("no built-in persona %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return Parse(b, "builtin/"+name+".yaml")
}

// Names lists the built-in personas.
func Names() []string {
	ents, _ := builtinFS.ReadDir("builtin")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}
