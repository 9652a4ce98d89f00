package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Every stored value is framed as format byte || payload || CRC-32C(format || payload). The
// format byte lets a later schema change a record's layout and still read the old one; the CRC
// catches damage bbolt would not (it checksums only its meta pages), so a flipped bit in a
// private key is an error rather than a wrong signature. No value is ever empty, which also
// sidesteps bbolt's nil-versus-empty ambiguity.
const (
	formatV1  byte = 1
	frameSize      = 1 + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func frame(payload []byte) []byte {
	out := make([]byte, 0, len(payload)+frameSize)
	out = append(out, formatV1)
	out = append(out, payload...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
}

// unframe checks a stored value and returns its payload, which aliases data.
func unframe(what string, data []byte) ([]byte, error) {
	if len(data) > 0 && data[0] == formatSealed {
		// Only a sealed value that failed to open reaches here (see sealedBackend).
		return nil, fmt.Errorf("%w: %s: sealed value does not open (damaged)", ErrCorrupt, what)
	}
	if len(data) < frameSize {
		return nil, fmt.Errorf("%w: %s: %d bytes", ErrCorrupt, what, len(data))
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, what)
	}
	if body[0] != formatV1 {
		return nil, fmt.Errorf("%w: %s: unknown format %d", ErrCorrupt, what, body[0])
	}
	return body[1:], nil
}

// Bounds on decoded records beyond the API limits, so a damaged record cannot ask for huge
// allocations.
const (
	maxStringLen    = 1024
	maxSecretLen    = 1024
	maxCredBlobLen  = 1024
	maxTemplateLen  = 64
	maxRPIDListLen  = 64
	maxSmallCounter = 255
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CTAP2EncOptions().EncMode(); err != nil {
		panic(err) // static options: a failure is a programming error caught by any test
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  maxRPIDListLen,
		MaxMapPairs:       32,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// credRecord is the on-disk form of a Credential; kept apart from the API type so the API can
// change without changing the file format.
type credRecord struct {
	ID              []byte `cbor:"1,keyasint"`
	RPID            string `cbor:"2,keyasint"`
	RPName          string `cbor:"3,keyasint,omitempty"`
	UserID          []byte `cbor:"4,keyasint"`
	UserName        string `cbor:"5,keyasint,omitempty"`
	UserDisplayName string `cbor:"6,keyasint,omitempty"`
	Alg             int    `cbor:"7,keyasint"`
	PrivateKey      []byte `cbor:"8,keyasint"`
	CredProtect     uint8  `cbor:"9,keyasint,omitempty"`
	HMACSecret      bool   `cbor:"10,keyasint,omitempty"`
	CredRandomUV    []byte `cbor:"11,keyasint,omitempty"`
	CredRandomNoUV  []byte `cbor:"12,keyasint,omitempty"`
	CredBlob        []byte `cbor:"13,keyasint,omitempty"`
	LargeBlobKey    []byte `cbor:"14,keyasint,omitempty"`
	Created         uint64 `cbor:"15,keyasint"`
}

type pinRecord struct {
	Set         bool   `cbor:"1,keyasint,omitempty"`
	Hash        []byte `cbor:"2,keyasint,omitempty"`
	CodePoints  int    `cbor:"3,keyasint,omitempty"`
	Retries     int    `cbor:"4,keyasint"`
	ForceChange bool   `cbor:"5,keyasint,omitempty"`
}

type settingsRecord struct {
	AlwaysUV              bool     `cbor:"1,keyasint,omitempty"`
	EnterpriseAttestation bool     `cbor:"2,keyasint,omitempty"`
	MinPINLength          int      `cbor:"3,keyasint,omitempty"`
	MinPINLengthRPIDs     []string `cbor:"4,keyasint,omitempty"`
}

type fingerRecord struct {
	TemplateID   []byte `cbor:"1,keyasint"`
	FriendlyName string `cbor:"2,keyasint,omitempty"`
	Seq          uint64 `cbor:"3,keyasint"` // enrollment order
}

func encodeRecord(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode: %w", err)
	}
	return frame(b), nil
}

func decodeRecord(what string, data []byte, v any) error {
	payload, err := unframe(what, data)
	if err != nil {
		return err
	}
	if err := decMode.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
	}
	return nil
}

func encodeCredential(c *Credential) ([]byte, error) {
	r := credRecord(*c)
	return encodeRecord(&r)
}

func decodeCredential(data []byte) (*Credential, error) {
	var r credRecord
	if err := decodeRecord("credential", data, &r); err != nil {
		return nil, err
	}
	c := Credential(r)
	if err := validateCredential(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &c, nil
}

func validateCredential(c *Credential) error {
	switch {
	case len(c.ID) == 0 || len(c.ID) > MaxCredentialIDLen:
		return fmt.Errorf("credential ID length %d not in 1..%d", len(c.ID), MaxCredentialIDLen)
	case c.RPID == "" || len(c.RPID) > maxStringLen:
		return fmt.Errorf("rp id length %d not in 1..%d", len(c.RPID), maxStringLen)
	case len(c.UserID) == 0 || len(c.UserID) > MaxUserIDLen:
		return fmt.Errorf("user id length %d not in 1..%d", len(c.UserID), MaxUserIDLen)
	case len(c.PrivateKey) == 0 || len(c.PrivateKey) > maxSecretLen:
		return fmt.Errorf("private key length %d not in 1..%d", len(c.PrivateKey), maxSecretLen)
	case c.CredProtect > 3:
		return fmt.Errorf("credProtect %d not in 0..3", c.CredProtect)
	case len(c.CredRandomUV) != 0 && len(c.CredRandomUV) != 32,
		len(c.CredRandomNoUV) != 0 && len(c.CredRandomNoUV) != 32:
		return fmt.Errorf("credRandom must be empty or 32 bytes")
	case len(c.CredBlob) > maxCredBlobLen || len(c.LargeBlobKey) > maxSecretLen:
		return fmt.Errorf("credBlob or largeBlobKey too long")
	}
	for _, s := range []string{c.RPID, c.RPName, c.UserName, c.UserDisplayName} {
		if len(s) > maxStringLen || !utf8.ValidString(s) {
			return fmt.Errorf("string field too long or not UTF-8")
		}
	}
	return nil
}

func encodePIN(p PIN) ([]byte, error) { return encodeRecord(pinRecord(p)) }

func decodePIN(data []byte) (PIN, error) {
	var r pinRecord
	if err := decodeRecord("pin", data, &r); err != nil {
		return PIN{}, err
	}
	p := PIN(r)
	if err := validatePIN(p); err != nil {
		return PIN{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return p, nil
}

func validatePIN(p PIN) error {
	switch {
	case p.Set && len(p.Hash) != PINHashLen:
		return fmt.Errorf("pin hash length %d, want %d", len(p.Hash), PINHashLen)
	case !p.Set && len(p.Hash) != 0:
		return fmt.Errorf("pin hash present but PIN not set")
	case p.Retries < 0 || p.Retries > maxSmallCounter:
		return fmt.Errorf("pin retries %d not in 0..%d", p.Retries, maxSmallCounter)
	case p.CodePoints < 0 || p.CodePoints > maxSmallCounter:
		return fmt.Errorf("pin code points %d not in 0..%d", p.CodePoints, maxSmallCounter)
	}
	return nil
}

func encodeSettings(s Settings) ([]byte, error) { return encodeRecord(settingsRecord(s)) }

func decodeSettings(data []byte) (Settings, error) {
	var r settingsRecord
	if err := decodeRecord("settings", data, &r); err != nil {
		return Settings{}, err
	}
	s := Settings(r)
	if err := validateSettings(s); err != nil {
		return Settings{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return s, nil
}

func validateSettings(s Settings) error {
	if s.MinPINLength < 0 || s.MinPINLength > maxSmallCounter {
		return fmt.Errorf("min PIN length %d not in 0..%d", s.MinPINLength, maxSmallCounter)
	}
	if len(s.MinPINLengthRPIDs) > maxRPIDListLen {
		return fmt.Errorf("%d minPinLength RP IDs, at most %d", len(s.MinPINLengthRPIDs), maxRPIDListLen)
	}
	for _, id := range s.MinPINLengthRPIDs {
		if id == "" || len(id) > maxStringLen || !utf8.ValidString(id) {
			return fmt.Errorf("invalid minPinLength RP ID")
		}
	}
	return nil
}

func encodeFinger(f fingerRecord) ([]byte, error) { return encodeRecord(f) }

func decodeFinger(data []byte) (fingerRecord, error) {
	var r fingerRecord
	if err := decodeRecord("fingerprint", data, &r); err != nil {
		return fingerRecord{}, err
	}
	if err := validateFingerprint(Fingerprint{TemplateID: r.TemplateID, FriendlyName: r.FriendlyName}); err != nil {
		return fingerRecord{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r, nil
}

func validateFingerprint(f Fingerprint) error {
	if len(f.TemplateID) == 0 || len(f.TemplateID) > maxTemplateLen {
		return fmt.Errorf("template ID length %d not in 1..%d", len(f.TemplateID), maxTemplateLen)
	}
	if len(f.FriendlyName) > maxStringLen || !utf8.ValidString(f.FriendlyName) {
		return fmt.Errorf("friendly name too long or not UTF-8")
	}
	return nil
}

// encodeRaw and decodeRaw frame opaque byte values (master secret, large blobs, persona blobs).
func encodeRaw(b []byte) []byte { return frame(b) }

func decodeRaw(what string, data []byte) ([]byte, error) {
	payload, err := unframe(what, data)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(payload), nil
}

func encodeUint(v uint64) []byte { return frame(binary.BigEndian.AppendUint64(nil, v)) }

// decodeUint reads a counter; an absent value is zero.
func decodeUint(what string, data []byte) (uint64, error) {
	if data == nil {
		return 0, nil
	}
	payload, err := unframe(what, data)
	if err != nil {
		return 0, err
	}
	if len(payload) != 8 {
		return 0, fmt.Errorf("%w: %s: %d-byte counter", ErrCorrupt, what, len(payload))
	}
	return binary.BigEndian.Uint64(payload), nil
}

// userKey is the resident-credential slot key: a length-prefixed RP ID followed by the FULL
// user.id. The length prefix keeps ("a", "bc") and ("ab", "c") apart, and the whole user.id is
// part of the key, so users whose ids share a prefix never collide.
func userKey(rpID string, userID []byte) []byte {
	k := rpPrefix(rpID)
	return append(k, userID...)
}

func rpPrefix(rpID string) []byte {
	k := binary.AppendUvarint(nil, uint64(len(rpID)))
	return append(k, rpID...)
}
