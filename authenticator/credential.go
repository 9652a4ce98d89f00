package authenticator

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
)

// Credential IDs are sealed boxes, so a key can recognise its own credentials without storing
// non-resident ones:
//
//	version(1) ‖ meta(1) ‖ nonce(12) ‖ AES-256-GCM(private key(32) ‖ credBlob) ‖ tag(16)
//
// The AAD is version ‖ meta ‖ rpIdHash: an ID presented for another RP, with an edited
// credProtect level or from another key (another master secret) fails to open and is simply
// "not ours". Resident credentials use the same format with the resident bit set; their
// authoritative copy is in the store, so a deleted resident credential stops working.
const (
	credIDVersion  = 0x01
	credIDNonceLen = 12
	credIDTagLen   = 16
	credIDHeader   = 2 + credIDNonceLen
	credSecretLen  = 32
	// credIDBaseLen is the length of an ID without a credBlob inside.
	credIDBaseLen = credIDHeader + credSecretLen + credIDTagLen

	metaCredProtect = 0x03 // two bits: 0 (unset) .. 3
	metaEdDSA       = 0x04
	metaHMACSecret  = 0x08
	metaResident    = 0x10
	metaKnown       = metaCredProtect | metaEdDSA | metaHMACSecret | metaResident | metaAlg | metaThirdPartyPayment // algorithms.go, ctap22.go
)

// Labels of the keys derived from the master secret (HKDF-SHA-256 info strings).
const (
	infoCredentialID = "fidolab credential-id v1"
	infoCredRandom   = "fidolab hmac-secret credRandom v1"
)

// coreState is what the credential commands derive once per key (not per request).
type coreState struct {
	mu   sync.Mutex
	keys *credKeys // derived from the master secret on first use; dropped by reset
	att  *attestation
}

// credKeys are the keys derived from the store's master secret.
type credKeys struct {
	aead       cipher.AEAD
	credRandom []byte // HMAC key that derives credRandom for non-resident credentials
}

// credentialKeys returns the derived keys, deriving them on first use.
func (a *Authenticator) credentialKeys() (*credKeys, error) {
	a.core.mu.Lock()
	defer a.core.mu.Unlock()
	if a.core.keys != nil {
		return a.core.keys, nil
	}
	master, err := a.st.Secrets()
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "reading master secret: %v", err)
	}
	defer clear(master)
	idKey, err := hkdf.Key(sha256.New, master, nil, infoCredentialID, 32)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "deriving credential key: %v", err)
	}
	defer clear(idKey)
	block, err := aes.NewCipher(idKey)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "credential cipher: %v", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "credential cipher: %v", err)
	}
	cr, err := hkdf.Key(sha256.New, master, nil, infoCredRandom, 32)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "deriving credRandom key: %v", err)
	}
	a.core.keys = &credKeys{aead: aead, credRandom: cr}
	return a.core.keys, nil
}

// forgetCredentialKeys drops the derived keys (the master secret changed).
func (a *Authenticator) forgetCredentialKeys() {
	a.core.mu.Lock()
	defer a.core.mu.Unlock()
	if a.core.keys != nil {
		clear(a.core.keys.credRandom)
		a.core.keys = nil
	}
}

// credential is one credential located for a request. secret is the private key (an ES256
// scalar or an Ed25519 seed) and must be wiped with wipe when the request is done.
type credential struct {
	id          []byte
	alg         int
	credProtect uint8
	hmacSecret  bool
	blob        []byte            // credBlob
	resident    *store.Credential // nil for a non-resident credential
	secret      []byte

	// opened is where openCredentialID puts what it unseals, so that opening an ID (on every
	// getAssertion) is one allocation instead of four: the ID's copy, the plaintext (secret ‖
	// credBlob) and the AAD live in the credential itself when they fit, as an ES256 ID with a
	// credBlob of up to 32 bytes does.
	opened struct {
		id  [credIDBaseLen + 32]byte
		pt  [credSecretLen + 32]byte
		aad [2 + 32]byte
	}
}

func (c *credential) wipe() {
	if c == nil {
		return
	}
	clear(c.secret)
	if c.resident != nil {
		clear(c.resident.PrivateKey)
		clear(c.resident.CredRandomUV)
		clear(c.resident.CredRandomNoUV)
		clear(c.resident.LargeBlobKey)
	}
}

func wipeAll(cs []*credential) {
	for _, c := range cs {
		c.wipe()
	}
}

// sealCredentialID builds a credential ID for a key bound to rpIDHash.
func (a *Authenticator) sealCredentialID(rpIDHash []byte, meta byte, secret, blob []byte) ([]byte, error) {
	keys, err := a.credentialKeys()
	if err != nil {
		return nil, err
	}
	id := make([]byte, credIDHeader, credIDBaseLen+len(blob))
	id[0], id[1] = credIDVersion, meta
	if _, err := io.ReadFull(a.rand, id[2:credIDHeader]); err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "credential nonce: %v", err)
	}
	pt := make([]byte, 0, credSecretLen+len(blob))
	pt = append(append(pt, secret...), blob...)
	defer clear(pt)
	return keys.aead.Seal(id, id[2:credIDHeader], pt, credAAD(id[:2], rpIDHash)), nil
}

func credAAD(header, rpIDHash []byte) []byte {
	aad := make([]byte, 0, 2+len(rpIDHash))
	return append(append(aad, header...), rpIDHash...)
}

// openCredentialID unseals id for rpIDHash. ok is false for anything that is not one of this
// key's IDs for that RP; err is only for internal failures.
func (a *Authenticator) openCredentialID(id, rpIDHash []byte) (c *credential, ok bool, err error) {
	if len(id) < credIDBaseLen || len(id) > store.MaxCredentialIDLen || id[0] != credIDVersion || id[1]&^metaKnown != 0 {
		return nil, false, nil
	}
	keys, err := a.credentialKeys()
	if err != nil {
		return nil, false, err
	}
	meta := id[1]
	alg := algFromMeta(meta)
	n := secretLen(alg)
	if n == 0 || len(id) < credIDLen(alg) {
		return nil, false, nil
	}
	c = &credential{alg: alg, credProtect: meta & metaCredProtect, hmacSecret: meta&metaHMACSecret != 0}
	aad := append(append(c.opened.aad[:0], id[:2]...), rpIDHash...)
	pt, err := keys.aead.Open(c.opened.pt[:0], id[2:credIDHeader], id[credIDHeader:], aad)
	if err != nil || len(pt) < n {
		return nil, false, nil
	}
	if len(id) <= len(c.opened.id) {
		c.id = append(c.opened.id[:0], id...)
	} else {
		c.id = bytes.Clone(id)
	}
	c.secret = pt[:n:n]
	if len(pt) > n {
		c.blob = pt[n:len(pt):len(pt)]
	}
	if meta&metaResident != 0 {
		clear(pt)
		c.secret, c.blob = nil, nil
		return c, true, nil // the caller resolves it in the store
	}
	return c, true, nil
}

// findCredential resolves a credential ID presented for rpID (or, with rpID "", for whatever RP
// hashes to rpIDHash): a sealed non-resident ID, or a resident credential that is still in the
// store. nil means "not this key's credential".
func (a *Authenticator) findCredential(id []byte, rpID string, rpIDHash []byte) (*credential, error) {
	c, ok, err := a.openCredentialID(id, rpIDHash)
	if err != nil || !ok {
		return nil, err
	}
	if c.secret != nil {
		return c, nil
	}
	rc, err := a.st.ResidentByID(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "reading credential: %v", err)
	}
	// U2F knows only the application parameter, so the hash is what binds the credential.
	if h := sha256.Sum256([]byte(rc.RPID)); !hmac.Equal(h[:], rpIDHash) || (rpID != "" && rc.RPID != rpID) {
		clear(rc.PrivateKey)
		return nil, nil
	}
	return residentCredential(rc), nil
}

// residentCredential wraps a stored credential; it takes ownership of rc's secrets.
func residentCredential(rc *store.Credential) *credential {
	return &credential{
		id: rc.ID, alg: rc.Alg, credProtect: rc.CredProtect, hmacSecret: rc.HMACSecret,
		blob: rc.CredBlob, resident: rc, secret: rc.PrivateKey,
	}
}

// newKeyPair makes a private key for alg and returns it with its COSE public key.
func (a *Authenticator) newKeyPair(alg int) (secret, coseKey []byte, err error) {
	switch cose.Algorithm(alg) {
	case cose.AlgES256:
		k, err := signer.GenerateKey(a.rand)
		if err != nil {
			return nil, nil, ctap.Errorf(ctap.ErrOther, "generating key: %v", err)
		}
		secret, err = k.Bytes()
		k.Destroy()
		if err != nil {
			return nil, nil, ctap.Errorf(ctap.ErrOther, "generating key: %v", err)
		}
	case cose.AlgEdDSA:
		secret = make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(a.rand, secret); err != nil {
			return nil, nil, ctap.Errorf(ctap.ErrOther, "generating key: %v", err)
		}
	default:
		return a.newWideKeyPair(alg)
	}
	if coseKey, err = publicCOSE(alg, secret); err != nil {
		clear(secret)
		return nil, nil, err
	}
	return secret, coseKey, nil
}

// publicCOSE derives the COSE public key (CTAP2 canonical CBOR) from a credential's private key:
// an ES256 scalar or an Ed25519 seed, as credentials store them.
func publicCOSE(alg int, secret []byte) ([]byte, error) {
	var (
		key cose.Key
		err error
	)
	switch cose.Algorithm(alg) {
	case cose.AlgES256:
		k, kerr := signer.NewPrivateKey(secret)
		if kerr != nil {
			return nil, ctap.Errorf(ctap.ErrOther, "unusable ES256 key")
		}
		key, err = cose.FromECDSA(cose.AlgES256, k.Public())
		k.Destroy()
	case cose.AlgEdDSA:
		var priv ed25519.PrivateKey
		switch len(secret) {
		case ed25519.SeedSize:
			priv = ed25519.NewKeyFromSeed(secret)
			defer clear(priv)
		case ed25519.PrivateKeySize:
			priv = ed25519.PrivateKey(secret)
		default:
			return nil, ctap.Errorf(ctap.ErrOther, "unusable EdDSA key")
		}
		key, err = cose.FromEd25519(priv.Public().(ed25519.PublicKey))
	default:
		key, err = widePublicCOSE(alg, secret)
	}
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "credential public key: %v", err)
	}
	b, err := key.Marshal()
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "encoding credential public key: %v", err)
	}
	return b, nil
}

// sign makes a WebAuthn signature over msg with a credential's key: ES256 through the fast
// signer over SHA-256(msg), EdDSA over msg itself.
func (a *Authenticator) sign(alg int, secret, msg []byte) ([]byte, error) {
	switch cose.Algorithm(alg) {
	case cose.AlgES256:
		digest := sha256.Sum256(msg)
		sig, err := a.sig.SignScalar(secret, digest[:])
		switch {
		case errors.Is(err, signer.ErrInvalidKey):
			return nil, ctap.Errorf(ctap.ErrOther, "credential key: %v", err)
		case err != nil:
			return nil, ctap.Errorf(ctap.ErrOther, "signing: %v", err)
		}
		return sig, nil
	case cose.AlgEdDSA:
		if len(secret) != ed25519.SeedSize {
			return nil, ctap.Errorf(ctap.ErrOther, "credential key: bad Ed25519 seed")
		}
		priv := ed25519.NewKeyFromSeed(secret)
		defer clear(priv)
		return ed25519.Sign(priv, msg), nil
	}
	return signWide(alg, secret, msg)
}

// credRandom returns the hmac-secret CredRandom of c for the UV state: stored for a resident
// credential, derived from the credential ID for a non-resident one.
func (a *Authenticator) credRandom(c *credential, uv bool) ([]byte, error) {
	if c.resident != nil {
		r := c.resident.CredRandomNoUV
		if uv {
			r = c.resident.CredRandomUV
		}
		if len(r) != 32 {
			return nil, ctap.Errorf(ctap.ErrOther, "resident credential lacks credRandom")
		}
		return append([]byte(nil), r...), nil
	}
	keys, err := a.credentialKeys()
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, keys.credRandom)
	if uv {
		m.Write([]byte{1})
	} else {
		m.Write([]byte{0})
	}
	m.Write(c.id)
	return m.Sum(nil), nil
}

// credMeta packs the bits a credential ID carries in the clear (and authenticates).
func credMeta(alg int, credProtect uint8, hmacSecret, resident bool) byte {
	m := credProtect & metaCredProtect
	if cose.Algorithm(alg) == cose.AlgEdDSA {
		m |= metaEdDSA
	}
	m |= algMeta(cose.Algorithm(alg))
	if hmacSecret {
		m |= metaHMACSecret
	}
	if resident {
		m |= metaResident
	}
	return m
}

// randomBytes draws n bytes from the key's randomness source.
func (a *Authenticator) randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(a.rand, b); err != nil {
		return nil, fmt.Errorf("randomness: %w", err)
	}
	return b, nil
}

// newAuthData starts the authenticator data a makeCredential or getAssertion signs: the RP ID
// hash, the extension outputs and the next signature counter value. The caller sets the flags.
func (a *Authenticator) newAuthData(rpIDHash [32]byte, exts map[string]any) (ctap.AuthData, error) {
	extBytes, err := encodeExtensions(exts)
	if err != nil {
		return ctap.AuthData{}, err
	}
	count, err := a.st.NextSignCount()
	if err != nil {
		return ctap.AuthData{}, ctap.Errorf(ctap.ErrOther, "signature counter: %v", err)
	}
	return ctap.AuthData{RPIDHash: rpIDHash, SignCount: count, Extensions: extBytes}, nil
}
