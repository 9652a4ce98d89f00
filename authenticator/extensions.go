package authenticator

import (
	"crypto/hmac"
	"crypto/sha256"
	"slices"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// Extension identifiers.
const (
	extCredProtect  = "credProtect"
	extHMACSecret   = "hmac-secret"
	extHMACSecretMC = "hmac-secret-mc"
	extCredBlob     = "credBlob"
	extLargeBlobKey = "largeBlobKey"
	extMinPINLength = "minPinLength"
)

// mcExtensions is the makeCredential extension input the persona understands; extensions the
// persona does not list are ignored, as the spec requires of unknown extensions.
type mcExtensions struct {
	credProtect   uint8 // 0: not requested
	hmacSecret    bool
	hmacSecretMC  *ctap.HMACSecretInput
	credBlobAsked bool
	credBlob      []byte // nil when not stored
	largeBlobKey  bool
	minPINLength  bool
}

// parseMCExtensions validates the input in the order the spec checks it.
func (a *Authenticator) parseMCExtensions(in *ctap.MakeCredentialExtensions, rk bool) (mcExtensions, error) {
	var e mcExtensions
	if in == nil {
		return e, nil
	}
	has := a.p.HasExtension
	if in.CredProtect != nil && has(extCredProtect) {
		if *in.CredProtect < ctap.CredProtectUVOptional || *in.CredProtect > ctap.CredProtectUVRequired {
			return e, ctap.Errorf(ctap.ErrInvalidOption, "credProtect %d", *in.CredProtect)
		}
		e.credProtect = uint8(*in.CredProtect)
	}
	if in.HMACSecret != nil && has(extHMACSecret) {
		e.hmacSecret = *in.HMACSecret
	}
	if in.HMACSecretMC != nil && has(extHMACSecretMC) {
		if !e.hmacSecret {
			return e, ctap.Errorf(ctap.ErrMissingParameter, "hmac-secret-mc without hmac-secret")
		}
		e.hmacSecretMC = in.HMACSecretMC
	}
	if in.CredBlob != nil && has(extCredBlob) {
		e.credBlobAsked = true
		if len(in.CredBlob) <= a.p.MaxCredBlobLength {
			e.credBlob = in.CredBlob
		}
	}
	if in.LargeBlobKey != nil && has(extLargeBlobKey) {
		if !*in.LargeBlobKey || !rk {
			return e, ctap.Errorf(ctap.ErrInvalidOption, "largeBlobKey must be true and needs a discoverable credential")
		}
		e.largeBlobKey = true
	}
	if in.MinPINLength != nil && has(extMinPINLength) {
		e.minPINLength = *in.MinPINLength
	}
	return e, nil
}

// gaExtensions is the getAssertion extension input the persona understands.
type gaExtensions struct {
	hmacSecret   *ctap.HMACSecretInput
	credBlob     bool
	largeBlobKey bool
}

func (a *Authenticator) parseGAExtensions(in *ctap.GetAssertionExtensions) (gaExtensions, error) {
	var e gaExtensions
	if in == nil {
		return e, nil
	}
	if in.HMACSecret != nil && a.p.HasExtension(extHMACSecret) {
		e.hmacSecret = in.HMACSecret
	}
	if in.CredBlob != nil && a.p.HasExtension(extCredBlob) {
		e.credBlob = *in.CredBlob
	}
	if in.LargeBlobKey != nil && a.p.HasExtension(extLargeBlobKey) {
		if !*in.LargeBlobKey {
			return e, ctap.Errorf(ctap.ErrInvalidOption, "largeBlobKey must be true")
		}
		e.largeBlobKey = true
	}
	return e, nil
}

// hmacSecretSession is a decoded hmac-secret input: the shared secret with the platform and
// the salts. Both are secret; wipe when done.
type hmacSecretSession struct {
	proto  pinuv.Protocol
	shared []byte
	salts  []byte // salt1, or salt1 ‖ salt2
}

// openHMACSecret checks an hmac-secret input (CTAP 2.1 §12.5): the key agreement, saltAuth and
// the salt length. Without an input it returns no session (nil, which wipe accepts).
func (a *Authenticator) openHMACSecret(in *ctap.HMACSecretInput) (*hmacSecretSession, error) {
	if in == nil {
		return nil, nil
	}
	if in.KeyAgreement == nil || in.SaltEnc == nil || in.SaltAuth == nil {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "hmac-secret input incomplete")
	}
	v := in.PinUvAuthProtocol
	if v == nil {
		v = ctap.Uint(1) // CTAP 2.0 platforms do not send it and mean protocol one
	}
	proto, err := a.protocol(v)
	if err != nil {
		return nil, err
	}
	peer, err := cose.Unmarshal(in.KeyAgreement)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	ka := a.keyAgreement[proto.Version()]
	a.mu.Unlock()
	if ka == nil {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "no key agreement for protocol %d", proto.Version())
	}
	shared, err := ka.SharedSecret(proto, peer)
	if err != nil {
		return nil, err
	}
	if !proto.Verify(shared, in.SaltEnc, in.SaltAuth) {
		clear(shared)
		return nil, ctap.Errorf(ctap.ErrPINAuthInvalid, "hmac-secret saltAuth does not verify")
	}
	salts, err := proto.Decrypt(shared, in.SaltEnc)
	if err != nil || (len(salts) != 32 && len(salts) != 64) {
		clear(shared)
		clear(salts)
		return nil, ctap.Errorf(ctap.ErrInvalidLength, "hmac-secret salts must be 32 or 64 bytes")
	}
	return &hmacSecretSession{proto: proto, shared: shared, salts: salts}, nil
}

// output computes HMAC-SHA-256(credRandom, salt) for each salt and encrypts the result.
func (h *hmacSecretSession) output(credRandom []byte) ([]byte, error) {
	out := make([]byte, 0, len(h.salts))
	for s := h.salts; len(s) > 0; s = s[32:] {
		m := hmac.New(sha256.New, credRandom)
		m.Write(s[:32])
		out = m.Sum(out)
	}
	defer clear(out)
	enc, err := h.proto.Encrypt(h.shared, out)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "hmac-secret output: %v", err)
	}
	return enc, nil
}

func (h *hmacSecretSession) wipe() {
	if h != nil {
		clear(h.shared)
		clear(h.salts)
	}
}

// minPINLengthFor returns the minimum PIN length when rpID may read it (minPinLength extension).
func minPINLengthFor(s liveState, rpID string) (int, bool) {
	if slices.Contains(s.minPINRPIDs, rpID) {
		return s.minPINLength, true
	}
	return 0, false
}

// encodeExtensions encodes an extension output map, nil when there is none.
func encodeExtensions(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := ctap.Marshal(m)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "encoding extension outputs: %v", err)
	}
	return b, nil
}

// hmacSecretOutput computes a credential's encrypted hmac-secret output for the session's salts,
// with the UV or the non-UV CredRandom; the CredRandom is wiped as soon as it has been used.
func (a *Authenticator) hmacSecretOutput(hs *hmacSecretSession, c *credential, uv bool) ([]byte, error) {
	cr, err := a.credRandom(c, uv)
	if err != nil {
		return nil, err
	}
	defer clear(cr)
	if err := a.hmacSecretPerBoot(cr); err != nil {
		return nil, err
	}
	return hs.output(cr)
}
