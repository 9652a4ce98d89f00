package authenticator

import (
	"context"

	"github.com/fidolab/fidolab/ctap"
)

// uvModalityFingerprint is USER_VERIFY_FINGERPRINT_INTERNAL (FIDO Registry §3.1).
const uvModalityFingerprint = 0x02

// liveState is the persistent state getInfo and the credential commands consult.
type liveState struct {
	pinSet       bool
	forceChange  bool
	fingerprints int
	alwaysUV     bool
	epEnabled    bool
	minPINLength int
	minPINRPIDs  []string
}

func (a *Authenticator) liveState() (liveState, error) {
	var s liveState
	pin, err := a.st.PIN()
	if err != nil {
		return s, ctap.Errorf(ctap.ErrOther, "reading PIN state: %v", err)
	}
	s.pinSet, s.forceChange = pin.Set, pin.ForceChange
	set, err := a.st.Settings()
	if err != nil {
		return s, ctap.Errorf(ctap.ErrOther, "reading settings: %v", err)
	}
	s.alwaysUV, s.epEnabled, s.minPINRPIDs = set.AlwaysUV, set.EnterpriseAttestation, set.MinPINLengthRPIDs
	s.minPINLength = a.p.MinPINLength
	if set.MinPINLength > 0 {
		s.minPINLength = set.MinPINLength
	}
	if a.p.BuiltInUV {
		fps, err := a.st.Fingerprints()
		if err != nil {
			return s, ctap.Errorf(ctap.ErrOther, "reading fingerprints: %v", err)
		}
		s.fingerprints = len(fps)
	}
	return s, nil
}

// uvProtected says whether some form of user verification guards the key (CTAP 2.1 §6.1.2).
func (s liveState) uvProtected() bool { return s.pinSet || s.fingerprints > 0 }

// getInfo is authenticatorGetInfo (CTAP 2.1 §6.4): the persona's model and the live settings.
func (a *Authenticator) getInfo(_ context.Context, _ *request) (any, error) {
	p := a.p
	s, err := a.liveState()
	if err != nil {
		return nil, err
	}
	v21 := p.Has(ctap.VersionFIDO21)
	opts := map[string]bool{"rk": p.ResidentKeys, "up": true, "plat": false}
	if p.ClientPIN {
		opts["clientPin"] = s.pinSet
	}
	if p.BuiltInUV {
		opts["uv"] = s.fingerprints > 0
		if v21 {
			opts["bioEnroll"] = s.fingerprints > 0
		}
		if p.BioEnrollPre {
			opts["userVerificationMgmtPreview"] = s.fingerprints > 0
		}
	}
	if p.CredMgmtPre {
		opts["credentialMgmtPreview"] = true
	}
	if v21 {
		if p.PinUvAuthToken {
			opts["pinUvAuthToken"] = true
		}
		if p.CredMgmt {
			opts["credMgmt"] = true
		}
		if p.LargeBlobs {
			opts["largeBlobs"] = true
		}
		if p.Config {
			opts["authnrCfg"] = true
			opts["alwaysUv"] = s.alwaysUV
			opts["setMinPINLength"] = true
		}
		if p.EnterpriseAtt {
			opts["ep"] = s.epEnabled
		}
		if p.MakeCredUVNotRqd {
			opts["makeCredUvNotRqd"] = !s.alwaysUV
		}
		if p.PerCredMgmtRO {
			opts["perCredMgmtRO"] = true // CTAP 2.2 §6.4
		}
	}
	gi := &ctap.GetInfoResponse{
		Versions:                 p.Versions,
		Extensions:               p.Extensions,
		AAGUID:                   p.AAGUID[:],
		Options:                  opts,
		MaxMsgSize:               uint64(p.MaxMsgSize),
		MaxCredentialCountInList: uint64(p.MaxCredentialCountInList),
		MaxCredentialIDLength:    uint64(p.MaxCredentialIDLength),
	}
	for _, v := range p.PinUvAuthProtocols {
		gi.PinUvAuthProtocols = append(gi.PinUvAuthProtocols, uint64(v))
	}
	if !v21 {
		return gi, nil
	}
	gi.Transports = []string{"usb"}
	for _, alg := range p.Algorithms {
		gi.Algorithms = append(gi.Algorithms, ctap.AlgorithmParam{Alg: int64(alg), Type: ctap.CredentialTypePublicKey})
	}
	if p.LargeBlobs {
		gi.MaxSerializedLargeBlobArray = uint64(p.MaxSerializedLargeBlobArray)
	}
	if p.ClientPIN {
		gi.ForcePINChange = ctap.Bool(s.forceChange)
		gi.MinPINLength = uint64(s.minPINLength)
	}
	gi.FirmwareVersion = uint64(p.FirmwareVersion)
	if p.HasExtension("credBlob") {
		gi.MaxCredBlobLength = uint64(p.MaxCredBlobLength)
	}
	if p.Config {
		gi.MaxRPIDsForSetMinPINLength = uint64(p.MaxRPIDsForSetMinPINLength)
	}
	if p.BuiltInUV {
		gi.UVModality = uvModalityFingerprint
		gi.PreferredPlatformUVAttempts = 3
	}
	// CTAP 2.2 §6.4 members 0x18, 0x1A, 0x1B, 0x1C: present only on a persona that has them.
	if p.LongTouchForReset {
		gi.LongTouchForReset = ctap.Bool(true)
	}
	gi.TransportsForReset = p.TransportsForReset
	if p.PinComplexityPolicy {
		gi.PinComplexityPolicy = ctap.Bool(true)
		if p.PinComplexityPolicyURL != "" {
			gi.PinComplexityPolicyURL = []byte(p.PinComplexityPolicyURL)
		}
	}
	if p.ResidentKeys {
		n, err := a.st.CountResident()
		if err != nil {
			return nil, ctap.Errorf(ctap.ErrOther, "counting credentials: %v", err)
		}
		gi.RemainingDiscoverableCredentials = ctap.Uint(uint64(max(p.ResidentCapacity-n, 0)))
	}
	return gi, nil
}

// supportsAlg reports whether the persona offers COSE algorithm alg.
func (a *Authenticator) supportsAlg(alg int64) bool {
	for _, x := range a.p.Algorithms {
		if int64(x) == alg && secretLen(x) > 0 {
			return true
		}
	}
	return false
}
