// Package pinuv implements PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6,
// §6.5.7): the key agreement, key derivation, encryption and message authentication
// that an authenticator and a platform both perform.
package pinuv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/fidolab/fidolab/ctap"
)

// Protocol is one PIN/UV auth protocol.
type Protocol interface {
	// Version is the protocol number sent on the wire: 1 or 2.
	Version() int
	// KDF derives the shared secret from the ECDH x-coordinate Z.
	KDF(z []byte) ([]byte, error)
	// Encrypt encrypts plaintext (a multiple of 16 bytes) under the shared secret.
	Encrypt(sharedSecret, plaintext []byte) ([]byte, error)
	// Decrypt reverses Encrypt; malformed ciphertext is an error, never a panic.
	Decrypt(sharedSecret, ciphertext []byte) ([]byte, error)
	// Authenticate computes pinUvAuthParam over message with a shared secret or a
	// pinUvAuthToken.
	Authenticate(key, message []byte) []byte
	// Verify checks a pinUvAuthParam in constant time.
	Verify(key, message, signature []byte) bool
}

// Sizes fixed by the specification.
const (
	ZSize            = 32 // ECDH x-coordinate
	TokenSize        = 32 // pinUvAuthToken
	V1SecretSize     = 32 // protocol one shared secret: the AES and HMAC key at once
	V2SecretSize     = 64 // protocol two shared secret: HMAC key ‖ AES key
	V1SignatureSize  = 16
	V2SignatureSize  = 32
	halfV2SecretSize = V2SecretSize / 2
)

// ErrCiphertext reports ciphertext that cannot be decrypted: a bad length or a
// missing IV. Errors wrapping it also wrap ctap.ErrInvalidParameter, the status the
// key returns for such a request.
var ErrCiphertext = errors.New("pinuv: malformed ciphertext")

// V1 is PIN/UV auth protocol one.
type V1 struct{}

// V2 is PIN/UV auth protocol two. Rand supplies encryption IVs; nil means crypto/rand.
type V2 struct {
	Rand io.Reader
}

// ByVersion returns the protocol with the given wire number.
func ByVersion(v int) (Protocol, bool) {
	switch v {
	case 1:
		return V1{}, true
	case 2:
		return V2{}, true
	}
	return nil, false
}

// Version returns 1.
func (V1) Version() int { return 1 }

// KDF returns SHA-256(Z).
func (V1) KDF(z []byte) ([]byte, error) {
	if len(z) != ZSize {
		return nil, fmt.Errorf("pinuv: Z is %d bytes, want %d", len(z), ZSize)
	}
	sum := sha256.Sum256(z)
	return sum[:], nil
}

// Encrypt is AES-256-CBC with an all-zero IV, as protocol one specifies.
func (V1) Encrypt(sharedSecret, plaintext []byte) ([]byte, error) {
	if len(sharedSecret) != V1SecretSize {
		return nil, fmt.Errorf("pinuv: protocol one secret is %d bytes, want %d", len(sharedSecret), V1SecretSize)
	}
	var iv [aes.BlockSize]byte
	return cbcEncrypt(sharedSecret, iv[:], plaintext)
}

// Decrypt reverses Encrypt.
func (V1) Decrypt(sharedSecret, ciphertext []byte) ([]byte, error) {
	if len(sharedSecret) != V1SecretSize {
		return nil, fmt.Errorf("pinuv: protocol one secret is %d bytes, want %d", len(sharedSecret), V1SecretSize)
	}
	var iv [aes.BlockSize]byte
	return cbcDecrypt(sharedSecret, iv[:], ciphertext)
}

// Authenticate returns the first 16 bytes of HMAC-SHA-256(key, message).
func (V1) Authenticate(key, message []byte) []byte {
	return hmacSHA256(key, message)[:V1SignatureSize]
}

// Verify accepts only a 16-byte signature equal to Authenticate(key, message).
func (p V1) Verify(key, message, signature []byte) bool {
	return len(signature) == V1SignatureSize && hmac.Equal(p.Authenticate(key, message), signature)
}

// Version returns 2.
func (V2) Version() int { return 2 }

// KDF returns HKDF-SHA-256(salt = 32 zero bytes, Z) expanded once with info
// "CTAP2 HMAC key" and once with "CTAP2 AES key": 64 bytes, HMAC key first.
func (V2) KDF(z []byte) ([]byte, error) {
	if len(z) != ZSize {
		return nil, fmt.Errorf("pinuv: Z is %d bytes, want %d", len(z), ZSize)
	}
	salt := make([]byte, 32)
	hmacKey, err := hkdf.Key(sha256.New, z, salt, "CTAP2 HMAC key", halfV2SecretSize)
	if err != nil {
		return nil, fmt.Errorf("pinuv: HKDF: %w", err)
	}
	aesKey, err := hkdf.Key(sha256.New, z, salt, "CTAP2 AES key", halfV2SecretSize)
	if err != nil {
		return nil, fmt.Errorf("pinuv: HKDF: %w", err)
	}
	return append(hmacKey, aesKey...), nil
}

// Encrypt is AES-256-CBC under the AES half of the secret with a random IV, which
// is prepended to the ciphertext.
func (p V2) Encrypt(sharedSecret, plaintext []byte) ([]byte, error) {
	if len(sharedSecret) != V2SecretSize {
		return nil, fmt.Errorf("pinuv: protocol two secret is %d bytes, want %d", len(sharedSecret), V2SecretSize)
	}
	r := p.Rand
	if r == nil {
		r = rand.Reader
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(r, iv); err != nil {
		return nil, fmt.Errorf("pinuv: reading IV: %w", err)
	}
	ct, err := cbcEncrypt(sharedSecret[halfV2SecretSize:], iv, plaintext)
	if err != nil {
		return nil, err
	}
	return append(iv, ct...), nil
}

// Decrypt splits off the IV and decrypts under the AES half of the secret.
func (V2) Decrypt(sharedSecret, ciphertext []byte) ([]byte, error) {
	if len(sharedSecret) != V2SecretSize {
		return nil, fmt.Errorf("pinuv: protocol two secret is %d bytes, want %d", len(sharedSecret), V2SecretSize)
	}
	if len(ciphertext) < aes.BlockSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the IV: %w", ErrCiphertext, len(ciphertext), ctap.ErrInvalidParameter)
	}
	return cbcDecrypt(sharedSecret[halfV2SecretSize:], ciphertext[:aes.BlockSize], ciphertext[aes.BlockSize:])
}

// Authenticate returns HMAC-SHA-256 keyed with the first 32 bytes of key: the HMAC
// half of a shared secret, or a whole 32-byte pinUvAuthToken.
func (V2) Authenticate(key, message []byte) []byte {
	if len(key) > halfV2SecretSize {
		key = key[:halfV2SecretSize]
	}
	return hmacSHA256(key, message)
}

// Verify accepts only a 32-byte signature equal to Authenticate(key, message).
func (p V2) Verify(key, message, signature []byte) bool {
	return len(signature) == V2SignatureSize && hmac.Equal(p.Authenticate(key, message), signature)
}

func hmacSHA256(key, message []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(message)
	return m.Sum(nil)
}

func cbcEncrypt(key, iv, plaintext []byte) ([]byte, error) {
	if len(plaintext)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("pinuv: plaintext is %d bytes, not a multiple of %d", len(plaintext), aes.BlockSize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pinuv: %w", err)
	}
	out := make([]byte, len(plaintext))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, plaintext)
	return out, nil
}

func cbcDecrypt(key, iv, ciphertext []byte) ([]byte, error) {
	if len(ciphertext)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of %d: %w", ErrCiphertext, len(ciphertext), aes.BlockSize, ctap.ErrInvalidParameter)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pinuv: %w", err)
	}
	out := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ciphertext)
	return out, nil
}
