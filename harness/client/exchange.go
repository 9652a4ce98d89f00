package client

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
)

// Exchange is one request and its answer as they crossed the transport, for traces and reports.
type Exchange struct {
	// Command names the request: a CTAP2 command's spec name, or "U2F_REGISTER" and the like.
	Command string
	// Cmd is the CTAP2 command byte; zero for U2F.
	Cmd ctap.Command
	// U2F marks a CTAP1 APDU exchange.
	U2F bool
	// Request is what was sent: command byte ‖ CBOR, or the request APDU.
	Request []byte
	// Response is what came back: status byte ‖ CBOR, or the response APDU; nil if Err is set.
	Response []byte
	// Status is the CTAP status of the response (StatusOK for a U2F answer with SW 0x9000).
	Status ctap.Status
	// SW is the U2F status word, zero for CTAP2.
	SW uint16
	// Duration is the time from sending the request to having the whole answer.
	Duration time.Duration
	// Err is the transport error, if the request got no answer.
	Err error
}

// secretPaths lists, per command, where requests and responses carry secrets or values derived
// from them. A path is map keys from the top, as printed by fmt; "*" stands for any key.
var secretPaths = map[ctap.Command]struct{ req, resp []string }{
	ctap.CmdMakeCredential: {
		req:  []string{"8", "6/hmac-secret-mc/2", "6/hmac-secret-mc/3"},
		resp: []string{"5"},
	},
	ctap.CmdGetAssertion: {
		req:  []string{"6", "4/hmac-secret/2", "4/hmac-secret/3"},
		resp: []string{"7"},
	},
	ctap.CmdGetNextAssertion:        {resp: []string{"7"}},
	ctap.CmdClientPIN:               {req: []string{"4", "5", "6"}, resp: []string{"2"}},
	ctap.CmdCredentialManagement:    {req: []string{"4"}, resp: []string{"11"}},
	ctap.CmdCredentialManagementPre: {req: []string{"4"}, resp: []string{"11"}},
	ctap.CmdBioEnrollment:           {req: []string{"5"}},
	ctap.CmdBioEnrollmentPre:        {req: []string{"5"}},
	ctap.CmdConfig:                  {req: []string{"4"}},
	ctap.CmdLargeBlobs:              {req: []string{"5"}},
}

var diagDec, _ = cbor.DecOptions{
	MaxNestedLevels:  16,
	MaxArrayElements: 4096,
	MaxMapPairs:      4096,
	IndefLength:      cbor.IndefLengthForbidden,
	TagsMd:           cbor.TagsForbidden,
	DupMapKey:        cbor.DupMapKeyEnforcedAPF,
}.DecMode()

var diagMode, _ = cbor.DiagOptions{ByteStringEncoding: cbor.ByteStringBase16Encoding}.DiagMode()

// Describe renders the exchange for a human: command, status, time, and request and response as
// CBOR diagnostic notation with every secret (PIN and token ciphertexts, pinUvAuthParam,
// hmac-secret salts, largeBlobKey) replaced by "<redacted N bytes>".
func (e Exchange) Describe() string {
	var b strings.Builder
	switch {
	case e.Err != nil:
		fmt.Fprintf(&b, "%s → transport error after %s: %v\n", e.Command, e.Duration.Round(time.Microsecond), e.Err)
	case e.U2F:
		fmt.Fprintf(&b, "%s → SW %04X (%s)\n", e.Command, e.SW, e.Duration.Round(time.Microsecond))
	default:
		fmt.Fprintf(&b, "%s → %s (%s)\n", e.Command, e.Status, e.Duration.Round(time.Microsecond))
	}
	if e.U2F {
		// U2F carries no secrets on the wire: key handles are opaque to the host.
		fmt.Fprintf(&b, "  request:  %s\n", hex.EncodeToString(e.Request))
		if e.Response != nil {
			fmt.Fprintf(&b, "  response: %s\n", hex.EncodeToString(e.Response))
		}
		return b.String()
	}
	rules := secretPaths[e.Cmd]
	if len(e.Request) > 1 {
		fmt.Fprintf(&b, "  request:  %s\n", redactedDiag(e.Request[1:], rules.req))
	}
	if len(e.Response) > 1 {
		fmt.Fprintf(&b, "  response: %s\n", redactedDiag(e.Response[1:], rules.resp))
		if e.Cmd == ctap.CmdMakeCredential || e.Cmd == ctap.CmdGetAssertion || e.Cmd == ctap.CmdGetNextAssertion {
			if s := authDataSummary(e.Cmd, e.Response[1:]); s != "" {
				fmt.Fprintf(&b, "  authData: %s\n", s)
			}
		}
	}
	return b.String()
}

// redactedDiag decodes data generically, replaces the values at paths, and renders the result.
// Anything it cannot decode is shown only by its size: it might be a secret.
func redactedDiag(data []byte, paths []string) string {
	var v any
	if err := diagDec.Unmarshal(data, &v); err != nil {
		return fmt.Sprintf("<%d bytes, not decodable CBOR: %v>", len(data), err)
	}
	for _, p := range paths {
		v = redactPath(v, strings.Split(p, "/"))
	}
	enc, err := ctap.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%d bytes, not re-encodable: %v>", len(data), err)
	}
	s, err := diagMode.Diagnose(enc)
	if err != nil {
		return fmt.Sprintf("<%d bytes: %v>", len(data), err)
	}
	return s
}

func redactPath(v any, path []string) any {
	if len(path) == 0 {
		return redactValue(v)
	}
	m, ok := v.(map[any]any)
	if !ok {
		return v
	}
	for k, child := range m {
		if path[0] == "*" || fmt.Sprint(k) == path[0] {
			m[k] = redactPath(child, path[1:])
		}
	}
	return m
}

func redactValue(v any) any {
	n := 0
	switch x := v.(type) {
	case []byte:
		n = len(x)
	case string:
		n = len(x)
	default:
		enc, _ := cbor.Marshal(v)
		n = len(enc)
	}
	return fmt.Sprintf("<redacted %d bytes>", n)
}

// authDataSummary decodes the authData of a makeCredential or getAssertion response into one line.
func authDataSummary(cmd ctap.Command, body []byte) string {
	var raw struct {
		MC []byte `cbor:"2,keyasint"`
	}
	if err := diagDec.Unmarshal(body, &raw); err != nil || raw.MC == nil {
		return ""
	}
	ad, err := ctap.ParseAuthData(raw.MC)
	if err != nil {
		return "unparsable: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rpIdHash=%x… flags=%s signCount=%d", ad.RPIDHash[:4], ctap.FlagNames(ad.Flags), ad.SignCount)
	if ad.Attested != nil {
		fmt.Fprintf(&b, " aaguid=%x credentialId=%d bytes", ad.Attested.AAGUID, len(ad.Attested.CredentialID))
	}
	if len(ad.Extensions) > 0 {
		var ext map[string]cbor.RawMessage
		if diagDec.Unmarshal(ad.Extensions, &ext) == nil {
			names := make([]string, 0, len(ext))
			for k := range ext {
				names = append(names, k)
			}
			sort.Strings(names)
			fmt.Fprintf(&b, " extensions=%s", strings.Join(names, ","))
		}
	}
	return b.String()
}
