package authenticator

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
)

// OIDs of the FIDO certificate extensions.
var (
	oidFIDOGenCeAAGUID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 4}
	oidFIDOTransports  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 2, 1, 1}
)

// Certificate validity is fixed and wide: the CA is made once per state file and must verify
// at whatever time a test or a relying party checks it.
var (
	certNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)
)

// attestation is the persona's attestation material, parsed once.
type attestation struct {
	root       *x509.Certificate
	batchCert  []byte
	batchKey   *signer.PrivateKey
	enterprise []byte
	entKey     *signer.PrivateKey
}

// attestationBlob is how the material is kept in the store (it survives Reset, as a real
// key's factory-installed certificate does).
type attestationBlob struct {
	Root       []byte `cbor:"1,keyasint"`
	RootKey    []byte `cbor:"2,keyasint"`
	Batch      []byte `cbor:"3,keyasint"`
	BatchKey   []byte `cbor:"4,keyasint"`
	Enterprise []byte `cbor:"5,keyasint"`
	EntKey     []byte `cbor:"6,keyasint"`
}

func attestationBlobName(p *persona.Persona) string { return "attestation/" + p.Name }

// needsCA says whether the persona ever signs with a certificate chain.
func needsCA(p *persona.Persona) bool {
	return p.Attestation == persona.AttestationBatch || p.U2F || p.EnterpriseAtt
}

// initAttestation loads the persona's test CA and certificates from the store, creating them
// on first use.
func (a *Authenticator) initAttestation() error {
	if !needsCA(a.p) {
		return nil
	}
	name := attestationBlobName(a.p)
	raw, err := a.st.Blob(name)
	if errors.Is(err, store.ErrNotFound) {
		raw, err = a.newAttestationBlob()
		if err == nil {
			err = a.st.PutBlob(name, raw)
		}
	}
	if err != nil {
		return err
	}
	var b attestationBlob
	if err := ctap.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("stored attestation: %w", err)
	}
	defer clear(b.RootKey)
	defer clear(b.BatchKey)
	defer clear(b.EntKey)
	root, err := x509.ParseCertificate(b.Root)
	if err != nil {
		return fmt.Errorf("stored attestation root: %w", err)
	}
	att := &attestation{root: root, batchCert: b.Batch, enterprise: b.Enterprise}
	if att.batchKey, err = signer.NewPrivateKey(b.BatchKey); err != nil {
		return fmt.Errorf("stored batch key: %w", err)
	}
	if att.entKey, err = signer.NewPrivateKey(b.EntKey); err != nil {
		return fmt.Errorf("stored enterprise key: %w", err)
	}
	a.core.mu.Lock()
	a.core.att = att
	a.core.mu.Unlock()
	return nil
}

// newAttestationBlob makes a self-signed P-256 root and the batch and enterprise certificates.
func (a *Authenticator) newAttestationBlob() ([]byte, error) {
	keys := make([]*signer.PrivateKey, 3)
	for i := range keys {
		k, err := signer.GenerateKey(a.rand)
		if err != nil {
			return nil, err
		}
		defer k.Destroy()
		keys[i] = k
	}
	rootKey, err := keys[0].ECDSA()
	if err != nil {
		return nil, err
	}
	s := a.p.AttestationSubject
	rootTmpl := &x509.Certificate{
		SerialNumber:          a.serial(),
		Subject:               pkix.Name{Country: nonEmpty(s.Country), Organization: nonEmpty(s.Organization), CommonName: "fidolab test CA for persona " + a.p.Name},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(a.rand, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	leaf := func(cn string, k *signer.PrivateKey) ([]byte, error) {
		t := &x509.Certificate{
			SerialNumber: a.serial(),
			Subject: pkix.Name{Country: nonEmpty(s.Country), Organization: nonEmpty(s.Organization),
				OrganizationalUnit: []string{"Authenticator Attestation"}, CommonName: cn},
			NotBefore:             certNotBefore,
			NotAfter:              certNotAfter,
			KeyUsage:              x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  false,
		}
		// USB transport (bit 2 of the FIDO transports BIT STRING).
		if v, err := asn1.Marshal(asn1.BitString{Bytes: []byte{0x20}, BitLength: 3}); err == nil {
			t.ExtraExtensions = append(t.ExtraExtensions, pkix.Extension{Id: oidFIDOTransports, Value: v})
		}
		if a.p.AAGUID != (persona.AAGUID{}) {
			v, err := asn1.Marshal(a.p.AAGUID[:])
			if err != nil {
				return nil, err
			}
			t.ExtraExtensions = append(t.ExtraExtensions, pkix.Extension{Id: oidFIDOGenCeAAGUID, Value: v})
		}
		return x509.CreateCertificate(a.rand, t, root, k.Public(), rootKey)
	}
	cn := s.CommonName
	if cn == "" {
		cn = "fidolab " + a.p.Name + " batch"
	}
	batch, err := leaf(cn, keys[1])
	if err != nil {
		return nil, fmt.Errorf("batch certificate: %w", err)
	}
	ent, err := leaf(cn+" enterprise", keys[2])
	if err != nil {
		return nil, fmt.Errorf("enterprise certificate: %w", err)
	}
	b := attestationBlob{Root: rootDER, Batch: batch, Enterprise: ent}
	for i, dst := range []*[]byte{&b.RootKey, &b.BatchKey, &b.EntKey} {
		if *dst, err = keys[i].Bytes(); err != nil {
			return nil, err
		}
	}
	defer clear(b.RootKey)
	defer clear(b.BatchKey)
	defer clear(b.EntKey)
	return ctap.Marshal(&b)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func (a *Authenticator) serial() *big.Int {
	b, err := a.randomBytes(16)
	if err != nil {
		return big.NewInt(a.clock.Now().UnixNano())
	}
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// AttestationRoot returns the persona's test CA certificate, which every batch and enterprise
// attestation chains to, or nil when the persona uses none.
func (a *Authenticator) AttestationRoot() *x509.Certificate {
	a.core.mu.Lock()
	defer a.core.mu.Unlock()
	if a.core.att == nil {
		return nil
	}
	return a.core.att.root
}

func (a *Authenticator) attestationMaterial() *attestation {
	a.core.mu.Lock()
	defer a.core.mu.Unlock()
	return a.core.att
}

// attest builds the attestation statement for a new credential over authData ‖ clientDataHash.
func (a *Authenticator) attest(authData, clientDataHash []byte, alg int, secret []byte, enterprise bool) (string, ctap.AttStmt, error) {
	msg := make([]byte, 0, len(authData)+len(clientDataHash))
	msg = append(append(msg, authData...), clientDataHash...)
	att := a.attestationMaterial()
	kind := a.p.Attestation
	if enterprise {
		kind = "enterprise"
	}
	switch {
	case kind == persona.AttestationNone:
		return ctap.FormatNone, ctap.AttStmt{}, nil
	case kind == persona.AttestationSelf:
		sig, err := a.sign(alg, secret, msg)
		if err != nil {
			return "", ctap.AttStmt{}, err
		}
		return ctap.FormatPacked, ctap.AttStmt{Alg: int64(alg), Sig: sig}, nil
	case att == nil:
		return "", ctap.AttStmt{}, ctap.Errorf(ctap.ErrOther, "persona %s has no attestation certificate", a.p.Name)
	}
	key, cert := att.batchKey, att.batchCert
	if enterprise {
		key, cert = att.entKey, att.enterprise
	}
	digest := sha256.Sum256(msg)
	sig, err := a.sig.Sign(key, digest[:])
	if err != nil {
		return "", ctap.AttStmt{}, ctap.Errorf(ctap.ErrOther, "attestation signature: %v", err)
	}
	return ctap.FormatPacked, ctap.AttStmt{Alg: int64(cose.AlgES256), Sig: sig, X5C: [][]byte{cert}}, nil
}
