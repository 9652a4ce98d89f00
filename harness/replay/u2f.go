package replay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/u2f"
)

// prepareU2F substitutes the new key's key handle in a U2F_AUTHENTICATE.
func (s *session) prepareU2F(st *Step, p *prepared) *prepared {
	c, err := u2f.ParseAPDU(st.Request)
	if err != nil || c.INS != u2f.InsAuthenticate {
		return p
	}
	r, err := u2f.ParseAuthenticateRequest(c)
	if err != nil {
		return p
	}
	n, ok := s.u2fHandles[hex.EncodeToString(r.KeyHandle)]
	if !ok {
		p.notes = append(p.notes, fmt.Sprintf("key handle %s is not one this replay saw the key make: sent as recorded", short(r.KeyHandle)))
		return p
	}
	if bytes.Equal(n, r.KeyHandle) {
		return p
	}
	data := make([]byte, 0, 65+len(n))
	data = append(data, r.Challenge[:]...)
	data = append(data, r.Application[:]...)
	data = append(data, byte(len(n)))
	data = append(data, n...)
	c.Data = data
	b, err := c.Encode()
	if err != nil {
		p.skip = "the new key handle does not fit the recorded APDU: " + err.Error()
		return p
	}
	p.req = b
	p.derive("key handle mapped to this key's")
	return p
}

// compareU2F compares U2F answers: status words exactly, registrations and signatures structurally.
func (s *session) compareU2F(st *Step, sent []byte, got []byte, o *outcome) {
	recPayload, _ := st.Response.Payload()
	rdata, rsw, rerr := u2f.ParseResponse(recPayload)
	gdata, gsw, gerr := u2f.ParseResponse(got)
	switch {
	case rerr != nil || gerr != nil:
		if !bytes.Equal(recPayload, got) {
			o.diff("answer", hex.EncodeToString(recPayload), hex.EncodeToString(got), "")
		}
		return
	case rsw != gsw:
		o.diff("status word", fmt.Sprintf("%04X", uint16(rsw)), fmt.Sprintf("%04X", uint16(gsw)), "")
		return
	case rsw != u2f.SWNoError:
		return
	}
	c, err := u2f.ParseAPDU(sent)
	if err != nil {
		return
	}
	switch c.INS {
	case u2f.InsVersion:
		if !bytes.Equal(rdata, gdata) {
			o.diff("version", string(rdata), string(gdata), "")
		}
	case u2f.InsRegister:
		req, err1 := u2f.ParseRegisterRequest(c)
		rr, err2 := u2f.ParseRegisterResponse(rdata)
		gr, err3 := u2f.ParseRegisterResponse(gdata)
		if err3 != nil {
			o.diff("registration", "a registration", "unparsable: "+err3.Error(), "")
			return
		}
		if err1 == nil && err2 == nil {
			s.u2fHandles[hex.EncodeToString(rr.KeyHandle)] = gr.KeyHandle
		}
		s.u2fPub[hex.EncodeToString(gr.KeyHandle)] = gr.PublicKey[:]
		cert, err := x509.ParseCertificate(gr.Certificate)
		if err != nil {
			o.diff("attestation certificate", "a certificate", "unparsable: "+err.Error(), "")
			return
		}
		if err1 == nil {
			pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
			sum := sha256.Sum256(u2f.RegisterSignedData(req.Application, req.Challenge, gr.KeyHandle, gr.PublicKey))
			if !ok || !ecdsa.VerifyASN1(pub, sum[:], gr.Signature) {
				o.diff("registration signature", "valid", "does not verify with the attestation certificate", "")
			} else {
				o.check("registration signature verified with the attestation certificate")
			}
		}
	case u2f.InsAuthenticate:
		req, err1 := u2f.ParseAuthenticateRequest(c)
		ra, err2 := u2f.ParseAuthenticateResponse(rdata)
		ga, err3 := u2f.ParseAuthenticateResponse(gdata)
		if err3 != nil {
			o.diff("authentication", "an assertion", "unparsable: "+err3.Error(), "")
			return
		}
		if err2 == nil && ra.UserPresence != ga.UserPresence {
			o.diff("user presence", fmt.Sprintf("%02x", ra.UserPresence), fmt.Sprintf("%02x", ga.UserPresence), "")
		}
		if err1 != nil {
			return
		}
		h := hex.EncodeToString(req.KeyHandle)
		if last, ok := s.u2fCount[h]; ok && ga.Counter <= last && ga.Counter != 0 {
			o.diff("counter", fmt.Sprintf("> %d", last), fmt.Sprint(ga.Counter), "the counter went backwards or repeated")
		}
		s.u2fCount[h] = ga.Counter
		pubBytes, ok := s.u2fPub[h]
		if !ok {
			o.note("signature not verified: the key handle was registered before the trace")
			return
		}
		pub, err := cose.FromUncompressed(cose.AlgES256, pubBytes)
		if err != nil {
			return
		}
		if pub.Verify(u2f.AuthenticateSignedData(req.Application, ga.UserPresence, ga.Counter, req.Challenge), ga.Signature) != nil {
			o.diff("signature", "valid", "does not verify with the registered public key", "")
		} else {
			o.check("signature verified")
		}
	}
}
