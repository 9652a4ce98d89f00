package replay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// compareCBOR compares a CTAP2 answer with the recorded one and learns from it what later steps
// need (the key agreement, the token, credential IDs and public keys).
func (s *session) compareCBOR(st *Step, p *prepared, got []byte) *outcome {
	o := &outcome{}
	rec, _ := st.Response.Payload()
	if len(got) == 0 {
		o.diff("status", statusName(st), "an empty answer", "")
		return o
	}
	rs, gs := recordedStatus(st), ctap.Status(got[0])
	if len(rec) == 0 {
		o.diff("status", "an empty answer", gs.String(), "")
		return o
	}
	if p.wrongPIN && gs != ctap.StatusOK {
		delete(s.ka, p.pin.proto.Version()) // a key regenerates its key agreement after a wrong PIN
	}
	if rs != gs {
		o.diff("status", rs.String(), gs.String(), "")
		return o
	}
	if gs != ctap.StatusOK {
		return o
	}
	if p.pinNext != "" {
		s.pin = p.pinNext
	}
	if len(rec) == 1 && len(got) == 1 {
		return o
	}
	if len(st.Response.Hex.Redacted) > 0 && st.Response.Hex.Redacted[0].Start <= 1 && st.Response.Hex.Redacted[0].End >= len(rec) {
		o.note("the recorded answer's body was redacted whole: only the status is compared")
		return o
	}
	rv, rerr := decodeAny(rec[1:])
	gv, gerr := decodeAny(got[1:])
	switch {
	case gerr != nil:
		o.diff("body", "CBOR", "not CBOR: "+gerr.Error(), "")
		return o
	case rerr != nil:
		o.note("the recorded answer's body is not CBOR (" + rerr.Error() + "): only the status is compared")
		return o
	}
	walk(st.Cmd, "", rv, gv, o)
	rm, _ := rv.(map[any]any)
	gm, _ := gv.(map[any]any)
	if gm == nil {
		return o
	}
	switch st.Cmd {
	case ctap.CmdClientPIN:
		s.answerClientPIN(st, p, rm, gm, o)
	case ctap.CmdMakeCredential:
		s.answerMakeCredential(p, rm, gm, o)
	case ctap.CmdGetAssertion, ctap.CmdGetNextAssertion:
		s.answerAssertion(st, p, rm, gm, o)
	case ctap.CmdBioEnrollment, ctap.CmdBioEnrollmentPre:
		if rt, gt := getBytes(rm, 4), getBytes(gm, 4); rt != nil && gt != nil {
			s.templates[hex.EncodeToString(rt)] = gt
		}
	case ctap.CmdCredentialManagement, ctap.CmdCredentialManagementPre:
		rd, gd := getMap(rm, 7), getMap(gm, 7)
		s.compareCredID("7.id", getBytes(rd, "id"), getBytes(gd, "id"), o)
		if _, ok := get(gm, 8); ok {
			rk, _ := get(rm, 8)
			gk, _ := get(gm, 8)
			if pub, ok := compareCOSE("8", rk, gk, o); ok && gd != nil {
				s.pub[hex.EncodeToString(getBytes(gd, "id"))] = pub
			}
		}
	}
	return o
}

func (s *session) answerClientPIN(st *Step, p *prepared, rm, gm map[any]any, o *outcome) {
	if _, ok := get(gm, 1); ok {
		rk, _ := get(rm, 1)
		gk, _ := get(gm, 1)
		if k, ok := compareCOSE("1", rk, gk, o); ok {
			v, have := getUint(mustMap(st.Request), 1)
			proto, err := protocolOf(v, have, nil)
			if err == nil {
				s.ka[proto.Version()] = k
			}
		}
	}
	rt, gt := getBytes(rm, 2), getBytes(gm, 2)
	if (rt == nil) != (gt == nil) || len(rt) != len(gt) {
		o.diff("2", lenOf(rt), lenOf(gt), "")
	}
	if gt == nil || p.pin == nil {
		return
	}
	tok, err := p.pin.proto.Decrypt(p.pin.secret, gt)
	if err != nil || (len(tok) != pinuv.TokenSize && (p.pin.proto.Version() != 1 || len(tok) != 16)) {
		o.diff("2", "a token encrypted for the host", "does not decrypt to a token", "")
		s.tok, s.tokWhy = nil, fmt.Sprintf("step #%d's token did not decrypt", st.Index)
		return
	}
	s.tok = &token{proto: p.pin.proto, b: tok, step: st.Index}
	o.check("pinUvAuthToken decrypted with the replay's key agreement")
}

func mustMap(req []byte) map[any]any {
	if len(req) < 2 {
		return nil
	}
	m, _ := decodeMap(req[1:])
	return m
}

func (s *session) answerMakeCredential(p *prepared, rm, gm map[any]any, o *outcome) {
	ga, credID := s.compareAuthData("2", getBytes(rm, 2), getBytes(gm, 2), nil, p, o)
	if ga == nil {
		return
	}
	req := mustMap(p.req)
	cdh := getBytes(req, 1)
	fmtName := getString(gm, 1)
	ra, ga3 := getMap(rm, 3), getMap(gm, 3)
	// The statement's members: the same ones, the same algorithm, as many certificates.
	for _, k := range sortedKeys(ra) {
		if _, ok := get(ga3, normKey(k)); !ok {
			o.diff("3."+keyName(k), "present", "(absent)", "")
		}
	}
	for _, k := range sortedKeys(ga3) {
		if _, ok := get(ra, normKey(k)); !ok && ra != nil {
			o.diff("3."+keyName(k), "(absent)", "present", "")
		}
	}
	if rv, ok := get(ra, "alg"); ok {
		if gv, _ := get(ga3, "alg"); !equal(rv, gv) {
			o.diff("3.alg", show(rv), show(gv), "")
		}
	}
	rx, _ := get(ra, "x5c")
	gx, _ := get(ga3, "x5c")
	rl, _ := rx.([]any)
	gl, _ := gx.([]any)
	if len(rl) != len(gl) {
		o.diff("3.x5c", fmt.Sprintf("%d certificates", len(rl)), fmt.Sprintf("%d certificates", len(gl)), "")
	}
	var pub *cose.Key
	if k, ok := s.pub[hex.EncodeToString(credID)]; ok {
		pub = &k
	}
	if err := verifyAttestation(fmtName, ga3, getBytes(gm, 2), cdh, ga, pub); err != nil {
		o.diff("3", "a statement that verifies", err.Error(), "")
	} else if fmtName != ctap.FormatNone {
		o.check("attestation verified (" + fmtName + ")")
	}
}

func (s *session) answerAssertion(st *Step, p *prepared, rm, gm map[any]any, o *outcome) {
	req := mustMap(p.req)
	cdh := getBytes(req, 2)
	if st.Cmd == ctap.CmdGetNextAssertion {
		cdh = s.lastCDH
	}
	rid := getBytes(getMap(rm, 1), "id")
	gid := getBytes(getMap(gm, 1), "id")
	if gid == nil { // left out when the allowList had one entry
		if l, ok := get(req, 3); ok {
			if list, _ := l.([]any); len(list) == 1 {
				d, _ := list[0].(map[any]any)
				gid = getBytes(d, "id")
			}
		}
	}
	if rid == nil {
		if l, ok := get(mustMap(st.Request), 3); ok {
			if list, _ := l.([]any); len(list) == 1 {
				d, _ := list[0].(map[any]any)
				rid = getBytes(d, "id")
			}
		}
	}
	s.compareCredID("1.id", rid, gid, o)
	if u := getMap(gm, 4); u != nil && gid != nil {
		s.users[hex.EncodeToString(getBytes(u, "id"))] = gid
	}
	ad, _ := s.compareAuthData("2", getBytes(rm, 2), getBytes(gm, 2), gid, p, o)
	if ad == nil {
		return
	}
	sig := getBytes(gm, 3)
	pub, ok := s.pub[hex.EncodeToString(gid)]
	switch {
	case !ok:
		o.note("signature not verified: the credential's public key is unknown to the replay (it was made before the trace)")
	case pub.Verify(append(bytes.Clone(getBytes(gm, 2)), cdh...), sig) != nil:
		o.diff("3", "a signature that verifies", "does not verify with the credential's public key", "")
	default:
		o.check("signature verified with the credential's public key")
	}
}

// oidAAGUID is the FIDO attestation certificate extension carrying the AAGUID.
var oidAAGUID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 4}

// verifyAttestation checks an attestation statement over authData ‖ clientDataHash: packed
// (with a certificate, or self attestation with the credential key), fido-u2f and none.
func verifyAttestation(format string, stmt map[any]any, authData, cdh []byte, ad *ctap.AuthData, credKey *cose.Key) error {
	signed := append(bytes.Clone(authData), cdh...)
	sig := getBytes(stmt, "sig")
	x5c, _ := get(stmt, "x5c")
	certs, _ := x5c.([]any)
	switch format {
	case ctap.FormatNone:
		if len(stmt) != 0 {
			return fmt.Errorf("format none with a non-empty statement")
		}
		return nil
	case ctap.FormatPacked:
		if len(certs) == 0 {
			if credKey == nil {
				return fmt.Errorf("self attestation, but the credential's public key is unknown")
			}
			alg, _ := getInt(stmt, "alg")
			if alg != int64(credKey.Alg) {
				return fmt.Errorf("self attestation with alg %d, credential key is alg %d", alg, credKey.Alg)
			}
			if err := credKey.Verify(signed, sig); err != nil {
				return fmt.Errorf("self attestation signature: %v", err)
			}
			return nil
		}
		cert, err := leaf(certs)
		if err != nil {
			return err
		}
		if err := verifyWithCert(cert, signed, sig); err != nil {
			return err
		}
		for _, ext := range cert.Extensions {
			if ext.Id.Equal(oidAAGUID) && ad.Attested != nil {
				var v []byte
				if _, err := asn1.Unmarshal(ext.Value, &v); err != nil || !bytes.Equal(v, ad.Attested.AAGUID[:]) {
					return fmt.Errorf("certificate AAGUID extension does not match authData's AAGUID")
				}
			}
		}
		return nil
	case ctap.FormatU2F:
		cert, err := leaf(certs)
		if err != nil {
			return err
		}
		if credKey == nil || ad.Attested == nil {
			return fmt.Errorf("fido-u2f without a credential public key")
		}
		point, err := credKey.Uncompressed()
		if err != nil {
			return err
		}
		msg := []byte{0}
		msg = append(msg, ad.RPIDHash[:]...)
		msg = append(msg, cdh...)
		msg = append(msg, ad.Attested.CredentialID...)
		msg = append(msg, point...)
		return verifyWithCert(cert, msg, sig)
	}
	return fmt.Errorf("format %q is not one this replay verifies", format)
}

func getInt(m map[any]any, k any) (int64, bool) {
	v, _ := get(m, k)
	return asInt(v)
}

func leaf(certs []any) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	der, _ := certs[0].([]byte)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("attestation certificate: %v", err)
	}
	return cert, nil
}

func verifyWithCert(cert *x509.Certificate, msg, sig []byte) error {
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(pub, sum[:], sig) {
			return fmt.Errorf("signature does not verify with the attestation certificate")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, msg, sig) {
			return fmt.Errorf("signature does not verify with the attestation certificate")
		}
	default:
		if err := cert.CheckSignature(cert.SignatureAlgorithm, msg, sig); err != nil {
			return fmt.Errorf("signature does not verify with the attestation certificate: %v", err)
		}
	}
	return nil
}
