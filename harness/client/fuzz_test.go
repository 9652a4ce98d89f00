package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/ctap"
)

// FuzzDescribe feeds arbitrary responses and requests carrying a fuzzed pinUvAuthParam: Describe
// must never panic and never print the secret, whatever surrounds it.
func FuzzDescribe(f *testing.F) {
	f.Add(byte(ctap.CmdGetAssertion), []byte("0123456789abcdef"), []byte{0xa1, 0x01, 0x02})
	f.Add(byte(ctap.CmdClientPIN), []byte("pinHashEnc......"), []byte{0x00, 0xa1, 0x02, 0x44, 1, 2, 3, 4})
	f.Add(byte(ctap.CmdMakeCredential), []byte{}, []byte{0x00})
	f.Add(byte(0x55), []byte{0xff, 0xfe, 0xfd, 0xfc, 0xfb}, []byte{0x00, 0xbf})
	f.Fuzz(func(t *testing.T, cmd byte, secret, resp []byte) {
		// Every command with a top-level pinUvAuthParam key, with the key number it uses.
		keys := map[ctap.Command]uint64{ctap.CmdMakeCredential: 8, ctap.CmdGetAssertion: 6, ctap.CmdClientPIN: 4,
			ctap.CmdCredentialManagement: 4, ctap.CmdBioEnrollment: 5, ctap.CmdConfig: 4, ctap.CmdLargeBlobs: 5}
		c := ctap.Command(cmd)
		key, known := keys[c]
		if !known {
			key = 6
		}
		body, err := ctap.Marshal(map[uint64]any{1: "rp.example", key: secret})
		if err != nil {
			t.Fatal(err)
		}
		e := Exchange{Command: c.String(), Cmd: c, Request: append([]byte{cmd}, body...), Response: resp}
		d := e.Describe()
		if !strings.HasPrefix(d, c.String()) {
			t.Fatalf("description does not start with the command: %q", d)
		}
		// Only the request carries the secret; the fuzzed response may contain the same bytes by
		// chance, and printing the response is allowed.
		reqLine, _, _ := strings.Cut(d, "  response: ")
		if known && len(secret) >= 4 && strings.Contains(reqLine, hex.EncodeToString(secret)) {
			t.Fatalf("secret printed: %q", d)
		}
		// A response that is not CBOR is never dumped: it might hold a secret.
		if len(resp) > 1 {
			var v any
			_, respLine, _ := strings.Cut(d, "  response: ")
			if diagDec.Unmarshal(resp[1:], &v) != nil && len(resp) > 5 && strings.Contains(respLine, hex.EncodeToString(resp[1:])) {
				t.Fatalf("undecodable response dumped: %q", d)
			}
		}
	})
}

// FuzzDecodeAnswers decodes arbitrary makeCredential and getAssertion bodies. Whatever is
// accepted must be consistent with the request: right rpIdHash, a credential ID, a valid key.
func FuzzDecodeAnswers(f *testing.F) {
	rp := "fuzz.example"
	h := sha256.Sum256([]byte(rp))
	ad := (&ctap.AuthData{RPIDHash: h, Flags: ctap.FlagUP, SignCount: 1}).Marshal()
	ga, _ := ctap.Marshal(&ctap.GetAssertionResponse{Credential: &ctap.CredentialDescriptor{ID: []byte{1}, Type: "public-key"}, AuthData: ad, Signature: []byte{1}})
	f.Add(ga)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa3, 0x01, 0x64, 'n', 'o', 'n', 'e', 0x02, 0x40, 0x03, 0xa0})
	f.Fuzz(func(t *testing.T, body []byte) {
		mcReq := &ctap.MakeCredentialRequest{RP: &ctap.RPEntity{ID: rp}}
		if r, err := decodeMakeCredential(mcReq, body); err == nil {
			if r.AuthData.RPIDHash != h || r.AuthData.Attested == nil || r.PublicKey.Validate() != nil {
				t.Fatalf("inconsistent makeCredential accepted: %+v", r.AuthData)
			}
			if _, err := r.AttestationObject(); err != nil {
				t.Fatalf("accepted answer has no attestation object: %v", err)
			}
		}
		var resp ctap.GetAssertionResponse
		if ctap.DecMode().Unmarshal(body, &resp) != nil {
			return
		}
		req := &ctap.GetAssertionRequest{RPID: rp, AllowList: []ctap.CredentialDescriptor{{ID: []byte{1}, Type: "public-key"}}}
		if r, err := decodeAssertion(req, &resp); err == nil {
			if r.AuthData.RPIDHash != h || !bytes.Equal(r.CredentialID, []byte{1}) || len(r.Signature) == 0 {
				t.Fatalf("inconsistent assertion accepted")
			}
		}
	})
}

// FuzzVerifyLargeBlobArray: only an array whose last 16 bytes hash the rest is accepted, and
// what comes back is exactly that rest.
func FuzzVerifyLargeBlobArray(f *testing.F) {
	good := []byte{0x80}
	sum := sha256.Sum256(good)
	f.Add(append(good, sum[:16]...))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 17))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := VerifyLargeBlobArray(b)
		if err != nil {
			return
		}
		s := sha256.Sum256(body)
		if !bytes.Equal(append(bytes.Clone(body), s[:16]...), b) {
			t.Fatal("accepted an array whose hash does not match")
		}
	})
}
