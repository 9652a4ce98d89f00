package authenticator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
)

// The algorithms beyond ES256 and EdDSA that a persona may offer (ES384, ES512, RS256, PS256).
// ES256 keeps its own fast path (package signer) and EdDSA its seed form; these go through the
// standard library, as they are rare and a real key is no faster at them.
//
// A credential's private key travels sealed in its credential ID (non-resident) or sits in the
// store (resident), as the bytes secretLen gives: the P-384 or P-521 scalar, and for RSA the two
// primes p ‖ q, from which n and d are recomputed.

// rsaBits is the modulus size of RSA credentials: what WebAuthn relying parties and Windows
// Hello use.
const rsaBits = 2048

// A credential ID's meta byte names the key's family in bits 6-7: 0 is ES256, or EdDSA with
// metaEdDSA (as before the field existed, so older IDs still open); 1 ES384; 2 ES512; 3 RSA, with
// metaEdDSA's bit meaning PSS (PS256) rather than PKCS#1 v1.5 (RS256). Bit 5 is the CTAP 2.2
// thirdPartyPayment flag (ctap22.go).
const (
	metaAlgShift = 6
	metaAlg      = 0x03 << metaAlgShift
	metaVariant  = metaEdDSA // EdDSA in family 0, PSS in family 3

	familyES384 = 1
	familyES512 = 2
	familyRSA   = 3
)

// algMeta is the meta bits that name alg (ES256: none; EdDSA's own bit is set by credMeta).
func algMeta(alg cose.Algorithm) byte {
	switch alg {
	case cose.AlgES384:
		return familyES384 << metaAlgShift
	case cose.AlgES512:
		return familyES512 << metaAlgShift
	case cose.AlgRS256:
		return familyRSA << metaAlgShift
	case cose.AlgPS256:
		return familyRSA<<metaAlgShift | metaVariant
	}
	return 0
}

// algFromMeta is the algorithm a credential ID's meta byte names, 0 for none.
func algFromMeta(meta byte) int {
	variant := meta&metaVariant != 0
	switch (meta & metaAlg) >> metaAlgShift {
	case 0:
		if variant {
			return int(cose.AlgEdDSA)
		}
		return int(cose.AlgES256)
	case familyES384:
		if !variant {
			return int(cose.AlgES384)
		}
	case familyES512:
		if !variant {
			return int(cose.AlgES512)
		}
	case familyRSA:
		if variant {
			return int(cose.AlgPS256)
		}
		return int(cose.AlgRS256)
	}
	return 0
}

// secretLen is the size of a credential's private key for alg, 0 for an unknown algorithm.
func secretLen(alg int) int {
	switch cose.Algorithm(alg) {
	case cose.AlgES256, cose.AlgEdDSA:
		return credSecretLen
	case cose.AlgES384:
		return 48
	case cose.AlgES512:
		return 66
	case cose.AlgRS256, cose.AlgPS256:
		return rsaBits / 8 // p ‖ q, each rsaBits/16 bits
	}
	return 0
}

// credIDLen is the size of a credential ID for alg without a credBlob inside.
func credIDLen(alg int) int { return credIDHeader + secretLen(alg) + credIDTagLen }

// checkAlgorithms refuses a persona whose credential IDs would not fit its own
// maxCredentialIdLength (an RSA credential carries its key: 286 bytes).
func checkAlgorithms(p *persona.Persona) error {
	for _, alg := range p.Algorithms {
		if secretLen(alg) == 0 {
			return fmt.Errorf("persona %s: algorithm %d has no implementation", p.Name, alg)
		}
		if n := credIDLen(alg); n > p.MaxCredentialIDLength {
			return fmt.Errorf("persona %s: %s credential IDs are %d bytes, over maxCredentialIdLength %d",
				p.Name, persona.AlgorithmName(alg), n, p.MaxCredentialIDLength)
		}
	}
	return nil
}

// ecCurve is the curve of an ECDSA algorithm other than ES256.
func ecCurve(alg cose.Algorithm) elliptic.Curve {
	if alg == cose.AlgES512 {
		return elliptic.P521()
	}
	return elliptic.P384()
}

// newWideKeyPair makes a key for ES384, ES512, RS256 or PS256 and returns its stored form and its
// COSE public key.
func (a *Authenticator) newWideKeyPair(alg int) (secret, coseKey []byte, err error) {
	switch cose.Algorithm(alg) {
	case cose.AlgES384, cose.AlgES512:
		k, err := ecdsa.GenerateKey(ecCurve(cose.Algorithm(alg)), rand.Reader)
		if err != nil {
			return nil, nil, ctap.Errorf(ctap.ErrOther, "generating key: %v", err)
		}
		if secret, err = k.Bytes(); err != nil {
			return nil, nil, ctap.Errorf(ctap.ErrOther, "generating key: %v", err)
		}
	case cose.AlgRS256, cose.AlgPS256:
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, nil, ctap.Errorf(ctap.ErrOther, "generating key: %v", err)
		}
		half := rsaBits / 16
		secret = make([]byte, 2*half)
		k.Primes[0].FillBytes(secret[:half])
		k.Primes[1].FillBytes(secret[half:])
	default:
		return nil, nil, ctap.Errorf(ctap.ErrUnsupportedAlgorithm, "algorithm %d", alg)
	}
	if coseKey, err = publicCOSE(alg, secret); err != nil {
		clear(secret)
		return nil, nil, err
	}
	return secret, coseKey, nil
}

// wideKey parses a stored ES384, ES512, RS256 or PS256 private key.
func wideKey(alg int, secret []byte) (crypto.Signer, error) {
	if len(secret) != secretLen(alg) {
		return nil, ctap.Errorf(ctap.ErrOther, "credential key of %d bytes for algorithm %d", len(secret), alg)
	}
	switch cose.Algorithm(alg) {
	case cose.AlgES384, cose.AlgES512:
		k, err := ecdsa.ParseRawPrivateKey(ecCurve(cose.Algorithm(alg)), secret)
		if err != nil {
			return nil, ctap.Errorf(ctap.ErrOther, "credential key: %v", err)
		}
		return k, nil
	case cose.AlgRS256, cose.AlgPS256:
		half := len(secret) / 2
		p, q := new(big.Int).SetBytes(secret[:half]), new(big.Int).SetBytes(secret[half:])
		one := big.NewInt(1)
		pm1, qm1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		lambda := new(big.Int).Div(new(big.Int).Mul(pm1, qm1), new(big.Int).GCD(nil, nil, pm1, qm1))
		e := big.NewInt(65537)
		d := new(big.Int).ModInverse(e, lambda)
		if d == nil {
			return nil, ctap.Errorf(ctap.ErrOther, "credential key: unusable RSA primes")
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: int(e.Int64())}, D: d, Primes: []*big.Int{p, q}}
		if err := k.Validate(); err != nil {
			return nil, ctap.Errorf(ctap.ErrOther, "credential key: %v", err)
		}
		k.Precompute()
		return k, nil
	}
	return nil, ctap.Errorf(ctap.ErrUnsupportedAlgorithm, "algorithm %d", alg)
}

// widePublicCOSE is the COSE public key of a stored ES384, ES512, RS256 or PS256 private key.
func widePublicCOSE(alg int, secret []byte) (cose.Key, error) {
	k, err := wideKey(alg, secret)
	if err != nil {
		return cose.Key{}, err
	}
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		return cose.FromECDSA(cose.Algorithm(alg), pub)
	case *rsa.PublicKey:
		return cose.FromRSA(cose.Algorithm(alg), pub)
	}
	return cose.Key{}, ctap.Errorf(ctap.ErrOther, "credential key of algorithm %d", alg)
}

// signWide signs msg as WebAuthn wants it for alg: ECDSA over SHA-384 or SHA-512 (DER), RSASSA
// PKCS#1 v1.5 or PSS (salt of 32 bytes) over SHA-256 (RFC 8812 §2).
func signWide(alg int, secret, msg []byte) ([]byte, error) {
	k, err := wideKey(alg, secret)
	if err != nil {
		return nil, err
	}
	digest := cose.Digest(cose.Algorithm(alg), msg)
	var sig []byte
	switch key := k.(type) {
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, key, digest)
	case *rsa.PrivateKey:
		if cose.Algorithm(alg) == cose.AlgPS256 {
			sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest)
		}
	}
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "signing: %v", err)
	}
	return sig, nil
}
