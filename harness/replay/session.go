package replay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// session is the replaying host's state during one group: what it learned from the key under test
// and what stands in for the recorded key's ephemeral state. A recorded clientPIN exchange cannot
// be sent again byte for byte: its platform key, PIN ciphertexts and pinUvAuthParam were made for
// the recorded key's key-agreement key and token. The session plays the host's part again
// against the new key — its own key agreement, its own token, the new key's credential IDs — and
// records which parts of each request it re-derived.
type session struct {
	rand io.Reader

	// pin is the key's PIN as far as the replay knows it ("" when unknown); setPINTo is what a
	// recorded setPIN sets, newPIN what a recorded changePIN changes it to.
	pin, setPINTo, newPIN string
	// wrongOK allows sending a PIN known to be wrong (a recorded failed attempt): it uses up one of
	// the key's retries, so it needs an emulated key or --destructive.
	wrongOK bool
	// pinWrites allows setPIN and changePIN (an emulated key, or --destructive).
	pinWrites bool

	// ka is the key's key-agreement public key, from its last getKeyAgreement answer.
	ka map[int]cose.Key
	// tok is the pinUvAuthToken the replay obtained last; tokWhy says why there is none.
	tok    *token
	tokWhy string

	// creds maps recorded credential IDs (hex) to the new key's; pub and count follow the new
	// key's credentials (hex ID → public key, last signature counter).
	creds map[string][]byte
	pub   map[string]cose.Key
	count map[string]uint32
	// templates maps recorded fingerprint template IDs (hex) to the new key's.
	templates map[string][]byte
	// users maps a user handle (hex) of a discoverable credential to the new key's credential.
	users map[string][]byte

	// lastCDH is the clientDataHash of the last getAssertion sent, which getNextAssertion
	// answers are signed over.
	lastCDH []byte

	// u2fHandles maps recorded U2F key handles to the new key's; u2fPub holds their public keys.
	u2fHandles map[string][]byte
	u2fPub     map[string][]byte
	u2fCount   map[string]uint32
}

type token struct {
	proto pinuv.Protocol
	b     []byte
	step  int
}

func newSession() *session {
	return &session{
		rand: rand.Reader, ka: map[int]cose.Key{}, creds: map[string][]byte{}, pub: map[string]cose.Key{},
		count: map[string]uint32{}, users: map[string][]byte{}, templates: map[string][]byte{}, u2fHandles: map[string][]byte{},
		u2fPub: map[string][]byte{}, u2fCount: map[string]uint32{},
		tokWhy: "no pinUvAuthToken was obtained in this replay before it (the recorded host got one before the trace began)",
	}
}

// mapCred records that the recorded key's credential old is the new key's credential new.
func (s *session) mapCred(old, new []byte) {
	if len(old) > 0 && len(new) > 0 {
		s.creds[hex.EncodeToString(old)] = append([]byte(nil), new...)
	}
}

// newCred returns the new key's credential for a recorded ID, and whether one is known.
func (s *session) newCred(old []byte) ([]byte, bool) {
	n, ok := s.creds[hex.EncodeToString(old)]
	return n, ok
}

// pinSession is one key agreement the replay made: the platform key it sent and the secret.
type pinSession struct {
	proto       pinuv.Protocol
	platformKey map[any]any // COSE key as it goes into a request
	secret      []byte
}

// protocolOf returns PIN/UV auth protocol v (1 when the request leaves it out, as CTAP 2.0 hosts do).
func protocolOf(v uint64, ok bool, r io.Reader) (pinuv.Protocol, error) {
	if !ok {
		v = 1
	}
	switch v {
	case 1:
		return pinuv.V1{}, nil
	case 2:
		return pinuv.V2{Rand: r}, nil
	}
	return nil, fmt.Errorf("PIN/UV auth protocol %d is unknown to this replay", v)
}

// encapsulate agrees a fresh secret with the key's key-agreement key for protocol p. When the
// replay has not seen the key's key-agreement key yet (the recorded host fetched it before the
// trace began), extraKA fetches it with an extra getKeyAgreement, and note says so.
func (s *session) encapsulate(ctx context.Context, p pinuv.Protocol, extraKA func(ctx context.Context, v int) (cose.Key, error)) (*pinSession, string, error) {
	note := ""
	peer, ok := s.ka[p.Version()]
	if !ok {
		if extraKA == nil {
			return nil, "", fmt.Errorf("the key's key-agreement key is unknown (no getKeyAgreement before this step)")
		}
		k, err := extraKA(ctx, p.Version())
		if err != nil {
			return nil, "", fmt.Errorf("extra getKeyAgreement: %w", err)
		}
		s.ka[p.Version()] = k
		peer = k
		note = "an extra getKeyAgreement was sent first (the recorded host had fetched the key agreement before the trace began)"
	}
	pk, secret, err := pinuv.Encapsulate(p, s.rand, peer)
	if err != nil {
		return nil, "", fmt.Errorf("key agreement with the key's key: %w", err)
	}
	enc, err := pk.Marshal()
	if err != nil {
		return nil, "", err
	}
	m, err := decodeMap(enc)
	if err != nil {
		return nil, "", err
	}
	return &pinSession{proto: p, platformKey: m, secret: secret}, note, nil
}

// wrongPIN is a PIN the replay sends when the recorded attempt failed: never the known PIN.
func (s *session) wrongPIN() string {
	w := "fidolab-replay-wrong-pin"
	if w == s.pin {
		w += "-2"
	}
	return w
}

// replaySalt is the hmac-secret salt the replay uses: the recorded one travelled encrypted for the
// recording host, and nobody can read it back.
func replaySalt(n int) []byte {
	out := make([]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256([]byte(fmt.Sprintf("fidolab replay salt %d", i)))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// authMessage returns what a command's pinUvAuthParam authenticates (CTAP 2.1 §6), from the
// (already rewritten) request map.
func authMessage(cmd ctap.Command, m map[any]any) ([]byte, error) {
	switch cmd {
	case ctap.CmdMakeCredential:
		return getBytes(m, 1), nil
	case ctap.CmdGetAssertion:
		return getBytes(m, 2), nil
	case ctap.CmdCredentialManagement, ctap.CmdCredentialManagementPre:
		sub, _ := getUint(m, 1)
		msg := []byte{byte(sub)}
		if p, ok := get(m, 2); ok {
			b, err := encode(p)
			if err != nil {
				return nil, err
			}
			msg = append(msg, b...)
		}
		return msg, nil
	case ctap.CmdBioEnrollment, ctap.CmdBioEnrollmentPre:
		mod, _ := getUint(m, 1)
		sub, _ := getUint(m, 2)
		msg := []byte{byte(mod), byte(sub)}
		if p, ok := get(m, 3); ok {
			b, err := encode(p)
			if err != nil {
				return nil, err
			}
			msg = append(msg, b...)
		}
		return msg, nil
	case ctap.CmdConfig:
		sub, _ := getUint(m, 1)
		msg := append(ffs(), byte(ctap.CmdConfig), byte(sub))
		if p, ok := get(m, 2); ok {
			b, err := encode(p)
			if err != nil {
				return nil, err
			}
			msg = append(msg, b...)
		}
		return msg, nil
	case ctap.CmdLargeBlobs:
		off, _ := getUint(m, 3)
		data := getBytes(m, 2)
		sum := sha256.Sum256(data)
		msg := append(ffs(), byte(ctap.CmdLargeBlobs), 0x00, byte(off), byte(off>>8), byte(off>>16), byte(off>>24))
		return append(msg, sum[:]...), nil
	}
	return nil, fmt.Errorf("%s carries no pinUvAuthParam this replay knows how to make", cmd)
}

func ffs() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

// authParamKeys gives, per command, the request keys of pinUvAuthParam and pinUvAuthProtocol.
var authParamKeys = map[ctap.Command][2]int{
	ctap.CmdMakeCredential:          {8, 9},
	ctap.CmdGetAssertion:            {6, 7},
	ctap.CmdCredentialManagement:    {4, 3},
	ctap.CmdCredentialManagementPre: {4, 3},
	ctap.CmdBioEnrollment:           {5, 4},
	ctap.CmdBioEnrollmentPre:        {5, 4},
	ctap.CmdConfig:                  {4, 3},
	ctap.CmdLargeBlobs:              {5, 6},
}
