// Package keyprofile turns what a host can observe of a key — its getInfo, its CTAPHID INIT
// answer, its USB identity, its attestation, quirks a probe measured — into a persona the
// emulator can be, and writes that persona as YAML with every guess marked. fidolab probe
// --persona-out, replay --as-key and trace scenario build their personas here.
package keyprofile

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"go.yaml.in/yaml/v3"
)

// Profile is what was observed of one key. Zero fields were not observed.
type Profile struct {
	// Info is the key's getInfo answer, taken while it had no credentials when possible (its
	// remainingDiscoverableCredentials then is its capacity); nil for a key without CTAP2.
	Info *ctap.GetInfoResponse
	// U2F is true when the key answers CTAP1/U2F (U2F_VERSION, or U2F_V2 among its versions).
	U2F bool
	// HID is the key's USB identity when known (hidraw, libusb, an event log's device path).
	HID *persona.HID
	// Device is the CTAPHID INIT answer's device version and capabilities, when seen.
	Device *DeviceInfo
	// Attestation is the format observed at makeCredential: persona.AttestationBatch (a
	// certificate), AttestationSelf or AttestationNone; Subject is the certificate's subject.
	Attestation string
	Subject     *persona.Subject
	// ResidentCapacity is how many discoverable credentials the key was seen to hold at most
	// (filling it), or its remainingDiscoverableCredentials when it was empty; ResidentCapacityWhy,
	// when set, says it is an estimate and why.
	ResidentCapacity    int
	ResidentCapacityWhy string
	// Algorithms are the COSE algorithms the key was seen to accept, for keys whose getInfo does
	// not list them (CTAP 2.0).
	Algorithms []int
	// Quirks are the behaviours measured: ordering, keepalives, the reset window, slowness.
	Quirks persona.Quirks
	// QuirksKnown says which quirks were measured (the others are left at the spec's behaviour
	// and marked as guesses): "oldestFirst", "noKeepalive", "resetWindowSeconds", "processingDelayMs",
	// "pinRetriesWithoutPin".
	QuirksKnown []string
	// MaxFingerprints and EnrollSamples come from a fingerprint sensor's info, when read.
	MaxFingerprints, EnrollSamples int
	// Name and Description name the persona; Source says where the observation came from
	// ("fidolab probe of hidraw:/dev/hidraw3", "trace foo.trace.jsonl").
	Name, Description, Source string
}

// DeviceInfo is what a key says of itself in its CTAPHID_INIT answer.
type DeviceInfo struct {
	Major, Minor, Build byte
	Capabilities        byte
}

// Guess is one persona field set without an observation, and why.
type Guess struct {
	Field string // the YAML field: "residentCapacity", "hid", "quirks.oldestFirst"
	Why   string
}

// Persona builds the persona that mirrors the profile, and lists the fields it had to guess.
// The persona is valid (persona.Validate): values the emulator cannot take (an algorithm it
// lacks, a maxMsgSize out of range) are adjusted, and the adjustment listed.
func (pr *Profile) Persona() (*persona.Persona, []Guess) {
	var g []Guess
	guess := func(field, format string, a ...any) { g = append(g, Guess{field, fmt.Sprintf(format, a...)}) }
	p := &persona.Persona{
		Name: pr.Name, Description: pr.Description, U2F: pr.U2F, MinPINLength: 4, MaxCredentialIDLength: 128,
		Attestation: pr.Attestation, Quirks: pr.Quirks,
	}
	if p.Name == "" {
		p.Name = "mirrored-key"
	}
	if info := pr.Info; info != nil {
		p.CTAP2 = true
		copy(p.AAGUID[:], info.AAGUID)
		p.Versions = slices.Clone(info.Versions)
		p.Extensions = slices.Clone(info.Extensions)
		if p.U2F = pr.U2F || info.HasVersion(ctap.VersionU2F); p.U2F && !slices.Contains(p.Versions, ctap.VersionU2F) {
			p.Versions = append([]string{ctap.VersionU2F}, p.Versions...)
		}
		for _, v := range info.PinUvAuthProtocols {
			if v == 1 || v == 2 {
				p.PinUvAuthProtocols = append(p.PinUvAuthProtocols, int(v))
			} else {
				guess("pinUvAuthProtocols", "the key offers protocol %d, which the emulator does not speak: left out", v)
			}
		}
		has := func(o string) bool { _, ok := info.Options[o]; return ok }
		p.ClientPIN = has("clientPin")
		p.ResidentKeys = info.Options["rk"]
		p.BuiltInUV = has("uv") || has("bioEnroll")
		p.CredMgmt = info.Options["credMgmt"]
		p.CredMgmtPre = info.Options["credentialMgmtPreview"]
		p.BioEnrollPre = has("userVerificationMgmtPreview")
		p.LargeBlobs = info.Options["largeBlobs"]
		p.Config = info.Options["authnrCfg"]
		p.EnterpriseAtt = has("ep")
		p.PinUvAuthToken = info.Options["pinUvAuthToken"]
		p.MakeCredUVNotRqd = has("makeCredUvNotRqd")
		p.Selection = info.HasVersion(ctap.VersionFIDO21)
		// CTAP 2.2 §6.4: option perCredMgmtRO and members 0x18, 0x1A..0x1C.
		p.PerCredMgmtRO = info.Options["perCredMgmtRO"]
		p.LongTouchForReset = info.LongTouchForReset != nil && *info.LongTouchForReset
		if len(info.TransportsForReset) > 0 {
			p.TransportsForReset = slices.Clone(info.TransportsForReset)
		}
		p.PinComplexityPolicy = info.PinComplexityPolicy != nil && *info.PinComplexityPolicy
		p.PinComplexityPolicyURL = string(info.PinComplexityPolicyURL)
		if p.ClientPIN && len(p.PinUvAuthProtocols) == 0 {
			p.PinUvAuthProtocols = []int{1}
			guess("pinUvAuthProtocols", "getInfo lists none: protocol 1, which CTAP 2.0 keys imply")
		}
		p.MaxMsgSize = int(info.MaxMsgSize)
		switch {
		case p.MaxMsgSize == 0:
			p.MaxMsgSize = 1024
			guess("maxMsgSize", "getInfo does not say: 1024, what CTAP assumes then")
		case p.MaxMsgSize < 1024 || p.MaxMsgSize > ctap.MaxMessageSize:
			guess("maxMsgSize", "the key says %d; the emulator takes 1024..%d", p.MaxMsgSize, ctap.MaxMessageSize)
			p.MaxMsgSize = min(max(p.MaxMsgSize, 1024), ctap.MaxMessageSize)
		}
		p.MaxCredentialCountInList = int(info.MaxCredentialCountInList)
		if n := int(info.MaxCredentialIDLength); n > 0 {
			p.MaxCredentialIDLength = min(max(n, 64), 1023)
			if n != p.MaxCredentialIDLength {
				guess("maxCredentialIdLength", "the key says %d; the emulator takes 64..1023", n)
			}
		} else {
			guess("maxCredentialIdLength", "getInfo does not say: 128")
		}
		for _, a := range info.Algorithms {
			rsa := a.Alg == -257 || a.Alg == -37
			switch {
			case rsa && p.MaxCredentialIDLength < persona.RSACredentialIDLength:
				guess("algorithms", "the key offers %s, but its credential IDs (at most %d bytes) cannot hold the emulator's %d-byte RSA ones: left out",
					persona.AlgorithmName(int(a.Alg)), p.MaxCredentialIDLength, persona.RSACredentialIDLength)
			case persona.KnownAlgorithm(int(a.Alg)):
				p.Algorithms = append(p.Algorithms, int(a.Alg))
			default:
				guess("algorithms", "the key offers COSE algorithm %d, which the emulator lacks: left out", a.Alg)
			}
		}
		if len(info.Algorithms) == 0 {
			p.Algorithms = slices.Clone(pr.Algorithms)
			if len(p.Algorithms) == 0 {
				p.Algorithms = []int{-7}
				guess("algorithms", "getInfo does not list them (CTAP 2.0): ES256, which every FIDO2 key has")
			}
		}
		if len(p.Algorithms) == 0 {
			p.Algorithms = []int{-7}
		}
		p.MaxSerializedLargeBlobArray = int(info.MaxSerializedLargeBlobArray)
		if info.MinPINLength > 0 {
			p.MinPINLength = int(min(max(info.MinPINLength, 4), 63))
		} else if p.ClientPIN {
			guess("minPinLength", "getInfo does not say: 4, the CTAP minimum")
		}
		p.FirmwareVersion = int(info.FirmwareVersion)
		p.MaxCredBlobLength = int(info.MaxCredBlobLength)
		p.MaxRPIDsForSetMinPINLength = int(info.MaxRPIDsForSetMinPINLength)
		if p.ResidentKeys {
			switch {
			case pr.ResidentCapacity > 0:
				p.ResidentCapacity = pr.ResidentCapacity
				if pr.ResidentCapacityWhy != "" {
					guess("residentCapacity", "%s", pr.ResidentCapacityWhy)
				}
			case info.RemainingDiscoverableCredentials != nil && *info.RemainingDiscoverableCredentials > 0:
				p.ResidentCapacity = int(*info.RemainingDiscoverableCredentials)
				guess("residentCapacity", "getInfo's remainingDiscoverableCredentials when observed; the key may have held credentials then")
			default:
				p.ResidentCapacity = 25
				guess("residentCapacity", "not observed: 25 (fill the key with fidolab probe --destructive to measure it)")
			}
		}
		if p.BuiltInUV {
			p.MaxFingerprints, p.EnrollSamples = pr.MaxFingerprints, pr.EnrollSamples
			if p.MaxFingerprints == 0 {
				p.MaxFingerprints = 5
				guess("maxFingerprints", "not observed: 5")
			}
			if p.EnrollSamples == 0 {
				p.EnrollSamples = 4
				guess("enrollSamples", "not observed: 4")
			}
		}
		var unknown []string
		for _, e := range p.Extensions {
			if !slices.Contains(persona.KnownExtensions, e) {
				unknown = append(unknown, e)
			}
		}
		if len(unknown) > 0 {
			guess("extensions", "advertised as the key does, but the emulator does not implement %s", strings.Join(unknown, ", "))
		}
	}
	if p.Attestation == "" {
		p.Attestation = persona.AttestationBatch
		guess("attestation", "not observed: packed with a batch certificate, what most keys send")
	}
	if pr.Subject != nil {
		p.AttestationSubject = *pr.Subject
	} else {
		p.AttestationSubject = persona.Subject{Country: "US", Organization: "fidolab", OrganizationalUnit: "Authenticator Attestation", CommonName: p.Name + " batch"}
		if p.Attestation == persona.AttestationBatch {
			guess("attestationSubject", "not observed: a fidolab test subject")
		}
	}
	if pr.HID != nil {
		p.HID = *pr.HID
	} else {
		p.HID = persona.HID{VendorID: 0x1209, ProductID: 0xf1d0, Manufacturer: "fidolab", Product: p.Name}
		guess("hid", "the USB identity was not observed: fidolab's test IDs 1209:f1d0")
	}
	if d := pr.Device; d != nil {
		p.HID.DeviceMajor, p.HID.DeviceMinor, p.HID.DeviceBuild = d.Major, d.Minor, d.Build
		p.HID.Wink = d.Capabilities&0x01 != 0
	} else if pr.HID == nil {
		p.HID.DeviceMajor, p.HID.Wink = 1, true
	}
	known := map[string]bool{}
	for _, q := range pr.QuirksKnown {
		known[q] = true
	}
	for _, q := range []string{"oldestFirst", "noKeepalive", "resetWindowSeconds", "processingDelayMs", "pinRetriesWithoutPin"} {
		if !known[q] && p.CTAP2 {
			guess("quirks."+q, "not measured: the spec's behaviour")
		}
	}
	if p.Description == "" {
		p.Description = "mirrors " + nonEmpty(pr.Source, "an observed key")
	}
	return p, g
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// WritePersona writes p as a persona file that persona.Load reads back: a comment saying where it
// came from, then every field, each guess marked beside its field.
func WritePersona(w io.Writer, p *persona.Persona, guesses []Guess, header string) error {
	var doc yaml.Node
	if err := doc.Encode(p); err != nil {
		return err
	}
	byField := map[string][]string{}
	for _, g := range guesses {
		top, sub, _ := strings.Cut(g.Field, ".")
		if sub != "" {
			byField[top] = append(byField[top], sub+": "+g.Why)
		} else {
			byField[top] = append(byField[top], g.Why)
		}
	}
	hexIDs(&doc)
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k := doc.Content[i]
		if why := byField[k.Value]; len(why) > 0 {
			k.HeadComment = "GUESS: " + strings.Join(why, "\nGUESS: ")
		}
	}
	doc.HeadComment = header
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// hexIDs writes the USB vendor and product IDs in hex, as people read them.
func hexIDs(doc *yaml.Node) {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "hid" {
			continue
		}
		h := doc.Content[i+1]
		h.Style = yaml.FlowStyle
		for j := 0; j+1 < len(h.Content); j += 2 {
			switch h.Content[j].Value {
			case "vendorId", "productId":
				var v uint16
				if _, err := fmt.Sscan(h.Content[j+1].Value, &v); err == nil {
					h.Content[j+1].Value = fmt.Sprintf("0x%04x", v)
				}
			}
		}
	}
}

// AAGUIDString formats 16 bytes as a UUID.
func AAGUIDString(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	var a persona.AAGUID
	copy(a[:], b)
	return a.String()
}
