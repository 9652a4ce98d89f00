package probe

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
)

// registration is the probe's one non-resident credential, made as Entra ID registers (ES256,
// hmac-secret, credProtect userVerificationOptional) but not discoverable, so it leaves nothing on
// the key but a higher signature counter. Several checks read it.
type registration struct {
	done  bool
	skip  string // why it could not be made for lack of something (a PIN)
	err   error
	req   *ctap.MakeCredentialRequest
	res   *client.MakeCredentialResult
	hmac  bool // hmac-secret was asked
	cp    bool // credProtect was asked
	quiet time.Duration
	took  time.Duration
	keeps int
}

func (s *session) hasExt(e string) bool { return s.info != nil && s.info.HasExtension(e) }

// register makes the registration once.
func (s *session) register(ctx context.Context) *registration {
	r := &s.reg
	if r.done {
		return r
	}
	r.done = true
	cn, err := s.dial(ctx)
	if err != nil {
		r.err = err
		return r
	}
	defer cn.close()
	req := &ctap.MakeCredentialRequest{ClientDataHash: random(32), RP: &ctap.RPEntity{ID: probeRP, Name: "fidolab probe"},
		User:             &ctap.UserEntity{ID: random(16), Name: "probe@" + probeRP, DisplayName: "fidolab probe"},
		PubKeyCredParams: es256(), Options: &ctap.Options{RK: ctap.Bool(false)}}
	ext := &ctap.MakeCredentialExtensions{}
	if s.hasExt("hmac-secret") {
		ext.HMACSecret, r.hmac = ctap.Bool(true), true
	}
	if s.hasExt("credProtect") {
		ext.CredProtect, r.cp = ctap.Uint(ctap.CredProtectUVOptional), true
	}
	if r.hmac || r.cp {
		req.Extensions = ext
	}
	tok, err := s.token(ctx, cn.c, ctap.PermMakeCredential, probeRP)
	switch {
	case errors.Is(err, errNoPIN):
		if v, _ := s.option("makeCredUvNotRqd"); !v {
			r.skip = err.Error()
			return r
		}
	case err != nil:
		r.err = fmt.Errorf("PIN token: %w", err)
		return r
	case tok != nil:
		req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(req.ClientDataHash), tok.ProtocolParam()
	}
	r.req = req
	r.res, r.err = cn.c.MakeCredential(ctx, req)
	r.quiet, r.took = cn.timed.silence()
	cn.mu.Lock()
	r.keeps = cn.keeps
	cn.mu.Unlock()
	if r.err != nil && errors.Is(r.err, ctap.ErrPUATRequired) {
		r.skip, r.err = errNoPIN.Error(), nil
	}
	return r
}

// needRegistration runs the registration and reports, on c, why a check cannot go on without it.
func (s *session) needRegistration(ctx context.Context, c *Check) *registration {
	r := s.register(ctx)
	switch {
	case r.skip != "":
		c.Status, c.Skipped = Skip, r.skip
		return nil
	case r.err != nil:
		c.Status, c.Observed = Fail, "makeCredential failed: "+r.err.Error()
		return nil
	}
	return r
}

func checkMakeCredential(ctx context.Context, s *session, c *Check) {
	r := s.needRegistration(ctx, c)
	if r == nil {
		return
	}
	res := r.res
	f := res.Response.Fmt
	var x5c [][]byte
	if len(res.Response.AttStmt.X5C) > 0 {
		x5c = res.Response.AttStmt.X5C
	}
	c.Details = append(c.Details, fmt.Sprintf("credential ID %d bytes, public key alg %d", len(res.CredentialID), res.PublicKey.Alg))
	if err := verifyPacked(res, r.req.ClientDataHash, s.info.AAGUID); err != nil {
		c.Status, c.Observed = Fail, fmt.Sprintf("attestation %s does not verify: %v", f, err)
		return
	}
	switch {
	case f == ctap.FormatPacked && len(x5c) > 0:
		cert, _ := x509.ParseCertificate(x5c[0])
		subj := persona.Subject{}
		if cert != nil {
			subj.CommonName = cert.Subject.CommonName
			if len(cert.Subject.Country) > 0 {
				subj.Country = cert.Subject.Country[0]
			}
			if len(cert.Subject.Organization) > 0 {
				subj.Organization = cert.Subject.Organization[0]
			}
			if len(cert.Subject.OrganizationalUnit) > 0 {
				subj.OrganizationalUnit = cert.Subject.OrganizationalUnit[0]
			}
		}
		s.pr.Attestation, s.pr.Subject = persona.AttestationBatch, &subj
		c.Status = Pass
		c.Observed = fmt.Sprintf("packed, %d certificate(s), signature verified", len(x5c))
		c.Details = append(c.Details, fmt.Sprintf("batch certificate subject C=%s O=%s OU=%s CN=%s", subj.Country, subj.Organization, subj.OrganizationalUnit, subj.CommonName))
		if len(x5c) == 1 {
			c.Details = append(c.Details, "no intermediate in x5c: Entra ID needs the chain up to a FIDO Metadata Service root")
		}
	case f == ctap.FormatPacked:
		s.pr.Attestation = persona.AttestationSelf
		c.Status, c.Observed = Warn, "packed self attestation, signature verified: Entra ID's enforced attestation refuses it"
	case f == ctap.FormatNone:
		s.pr.Attestation = persona.AttestationNone
		c.Status, c.Observed = Warn, "attestation none: Entra ID's enforced attestation refuses it"
	default:
		c.Status, c.Observed = Info, "attestation format "+f
	}
}

// verifyPacked checks a packed attestation over authData ‖ clientDataHash, and the certificate's
// AAGUID extension against getInfo's AAGUID.
func verifyPacked(res *client.MakeCredentialResult, cdh, aaguid []byte) error {
	st := res.Response.AttStmt
	switch res.Response.Fmt {
	case ctap.FormatNone:
		return nil
	case ctap.FormatPacked:
	default:
		return nil // other formats are reported, not verified
	}
	signed := append(bytes.Clone(res.RawAuthData), cdh...)
	if len(st.X5C) == 0 {
		if st.Alg != int64(res.PublicKey.Alg) {
			return fmt.Errorf("self attestation with alg %d, the credential's key is alg %d", st.Alg, res.PublicKey.Alg)
		}
		return res.PublicKey.Verify(signed, st.Sig)
	}
	cert, err := x509.ParseCertificate(st.X5C[0])
	if err != nil {
		return fmt.Errorf("certificate: %v", err)
	}
	if err := cert.CheckSignature(x509.ECDSAWithSHA256, signed, st.Sig); err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 4}) {
			var v []byte
			if _, err := asn1.Unmarshal(ext.Value, &v); err != nil || !bytes.Equal(v, aaguid) {
				return fmt.Errorf("the certificate's AAGUID extension is not getInfo's AAGUID")
			}
		}
	}
	if res.AuthData.Attested != nil && !bytes.Equal(res.AuthData.Attested.AAGUID[:], aaguid) {
		return fmt.Errorf("authData's AAGUID is not getInfo's AAGUID")
	}
	return nil
}

func checkAlgorithms(ctx context.Context, s *session, c *Check) {
	var algs []string
	es := false
	for _, a := range s.info.Algorithms {
		algs = append(algs, fmt.Sprint(a.Alg))
		es = es || a.Alg == -7
	}
	if len(algs) > 0 {
		c.Observed = "getInfo algorithms " + strings.Join(algs, ", ")
		c.Status = Fail
		if es {
			c.Status = Pass
		}
		for _, a := range s.info.Algorithms {
			s.pr.Algorithms = append(s.pr.Algorithms, int(a.Alg))
		}
		return
	}
	r := s.needRegistration(ctx, c)
	if r == nil {
		return
	}
	c.Status, c.Observed = Pass, "getInfo lists none (CTAP 2.0); makeCredential with ES256 worked"
	s.pr.Algorithms = []int{-7}
}

func checkKeepalive(ctx context.Context, s *session, c *Check) {
	r := s.needRegistration(ctx, c)
	if r == nil {
		return
	}
	c.Observed = fmt.Sprintf("makeCredential (waiting for a touch) took %s; %d KEEPALIVE(s), longest silence %s", ms(r.took), r.keeps, ms(r.quiet))
	switch {
	case r.took < 200*time.Millisecond:
		c.Status = Info
		c.Details = append(c.Details, "answered before a keepalive was due: nothing to measure (a touch that takes longer shows them)")
		return
	case r.quiet > 500*time.Millisecond:
		c.Status = Fail
		c.Details = append(c.Details, "Windows gives up on a key silent for about half a second: \"This security key cannot be used\"")
	default:
		c.Status = Pass
	}
	s.pr.Quirks.NoKeepalive = r.keeps == 0
	s.pr.QuirksKnown = append(s.pr.QuirksKnown, "noKeepalive")
}

func checkHMACSecret(ctx context.Context, s *session, c *Check) {
	if !s.hasExt("hmac-secret") {
		c.Status, c.Observed = Fail, "no hmac-secret in getInfo's extensions: Windows cannot protect its offline cache (offline sign-in fails)"
		return
	}
	r := s.needRegistration(ctx, c)
	if r == nil {
		return
	}
	if out := mcExt(r.res, "hmac-secret"); out != true {
		c.Details = append(c.Details, fmt.Sprintf("makeCredential's hmac-secret output is %v, not true", out))
	}
	salt := random(32)
	first, err := s.hmacAssertion(ctx, r, salt, true)
	if err != nil {
		c.Status, c.Observed = Fail, "getAssertion with hmac-secret: "+err.Error()
		return
	}
	again, err := s.hmacAssertion(ctx, r, salt, false)
	if err != nil {
		c.Status, c.Observed = Fail, "second getAssertion with hmac-secret: "+err.Error()
		return
	}
	if !bytes.Equal(first, again) {
		c.Status, c.Observed = Fail, "the same salt gave two different outputs: Windows' offline cache would never match"
		return
	}
	c.Status, c.Observed = Pass, "output decrypted, signature verified with hmac-secret requested, the same salt gives the same output"
}

// mcExt returns a makeCredential extension output.
func mcExt(res *client.MakeCredentialResult, name string) any {
	if res.AuthData == nil || len(res.AuthData.Extensions) == 0 {
		return nil
	}
	var m map[string]any
	if ctap.DecMode().Unmarshal(res.AuthData.Extensions, &m) != nil {
		return nil
	}
	return m[name]
}

// hmacAssertion gets an assertion of the registration with hmac-secret for salt, verifies its
// signature and returns the output. up false asks for no touch.
func (s *session) hmacAssertion(ctx context.Context, r *registration, salt []byte, up bool) ([]byte, error) {
	cn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer cn.close()
	h, in, err := cn.c.NewHMACSecret(ctx, salt, nil)
	if err != nil {
		return nil, err
	}
	req := &ctap.GetAssertionRequest{RPID: probeRP, ClientDataHash: random(32),
		AllowList:  []ctap.CredentialDescriptor{{ID: r.res.CredentialID, Type: ctap.CredentialTypePublicKey}},
		Extensions: &ctap.GetAssertionExtensions{HMACSecret: in}, Options: &ctap.Options{UP: ctap.Bool(up)}}
	res, err := cn.c.GetAssertion(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := res.Verify(r.res.PublicKey); err != nil {
		return nil, fmt.Errorf("the signature does not verify: %v", err)
	}
	out, _, err := h.Output(res.AuthData)
	return out, err
}

func checkCredProtect(ctx context.Context, s *session, c *Check) {
	if !s.hasExt("credProtect") {
		c.Status, c.Observed = Info, "no credProtect: every credential is userVerificationOptional, the level Entra ID asks"
		return
	}
	r := s.needRegistration(ctx, c)
	if r == nil {
		return
	}
	got := mcExt(r.res, "credProtect")
	c.Observed = fmt.Sprintf("asked userVerificationOptional (1), the key answered %v", got)
	if v, ok := got.(int64); ok && v == ctap.CredProtectUVOptional || got == nil {
		c.Status = Pass
		return
	}
	c.Status = Warn
}

func checkLongName(ctx context.Context, s *session, c *Check) {
	r := s.needRegistration(ctx, c)
	if r == nil {
		return
	}
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	name := strings.Repeat("a", 80) + "@contoso.example"
	req := &ctap.MakeCredentialRequest{ClientDataHash: random(32), RP: &ctap.RPEntity{ID: probeRP},
		User:             &ctap.UserEntity{ID: random(16), Name: name, DisplayName: strings.Repeat("Long Name ", 10)},
		PubKeyCredParams: es256(), Options: &ctap.Options{RK: ctap.Bool(false)}}
	if tok, err := s.token(ctx, cn.c, ctap.PermMakeCredential, probeRP); err == nil && tok != nil {
		req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(req.ClientDataHash), tok.ProtocolParam()
	}
	_, err = cn.c.MakeCredential(ctx, req)
	if err != nil {
		c.Status, c.Observed = Warn, fmt.Sprintf("a %d-character user name: %v", len(name), err)
		return
	}
	c.Status, c.Observed = Pass, fmt.Sprintf("a %d-character user name was accepted", len(name))
}

func checkMaxMsgSize(ctx context.Context, s *session, c *Check) {
	max := int(s.info.MaxMsgSize)
	if max == 0 {
		max = 1024
	}
	count := int(s.info.MaxCredentialCountInList)
	if count == 0 {
		count = 1
	}
	idLen := int(s.info.MaxCredentialIDLength)
	if idLen == 0 {
		idLen = 128
	}
	// Fill up to the advertised size: the allowList with count IDs as long as fits.
	build := func(n int) []byte {
		list := make([]ctap.CredentialDescriptor, count)
		for i := range list {
			list[i] = ctap.CredentialDescriptor{ID: random(n), Type: ctap.CredentialTypePublicKey}
		}
		b, _ := ctap.Marshal(&ctap.GetAssertionRequest{RPID: probeRP, ClientDataHash: make([]byte, 32), AllowList: list,
			Options: &ctap.Options{UP: ctap.Bool(false)}})
		return append([]byte{byte(ctap.CmdGetAssertion)}, b...)
	}
	n := idLen
	req := build(n)
	for len(req) > max && n > 16 {
		n--
		req = build(n)
	}
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	resp, err := cn.hid.CBOR(ctx, req)
	got := statusName(resp)
	if err != nil {
		got = err.Error()
	}
	c.Observed = fmt.Sprintf("a %d-byte getAssertion (maxMsgSize %d) with %d allowList entries of %d bytes → %s", len(req), max, count, n, got)
	switch {
	case err == nil && len(resp) > 0 && ctap.Status(resp[0]) == ctap.ErrNoCredentials:
		c.Status = Pass
	default:
		c.Status = Fail
		c.Details = append(c.Details, "expected CTAP2_ERR_NO_CREDENTIALS: the key cannot read a request of the size it advertises")
	}
	if s.info.MaxMsgSize < 1024 {
		c.Details = append(c.Details, fmt.Sprintf("maxMsgSize %d is below CTAP's minimum of 1024", s.info.MaxMsgSize))
	}
}
