// Package store holds an emulated key's persistent state: resident credentials, the PIN and its
// retry counter, settings, fingerprints, the large-blob array, the signature counter, the master
// secret and a few named blobs of the persona.
//
// Two implementations share one code path: OpenFile keeps the state in a bbolt file (one per
// key), NewMemory keeps it in process memory. Both sit on the same record logic over a small
// key/value backend, so they behave identically; a shared conformance suite checks that.
//
// Every mutating call is one transaction that is durable when it returns (bbolt fsyncs on
// commit), so nothing the key has acknowledged is lost by a crash. The signature counter is the
// exception to "one fsync per call": it reserves ranges ahead (see NextSignCount).
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Limits enforced on what the store accepts, so a bad record is refused at write time rather
// than found at read time.
const (
	// MaxCredentialIDLen is the WebAuthn L3 upper bound for a credential ID.
	MaxCredentialIDLen = 1023
	// MaxUserIDLen is the CTAP/WebAuthn upper bound for user.id.
	MaxUserIDLen = 64
	// MasterSecretLen is the length of the key's master secret.
	MasterSecretLen = 32
	// PINHashLen is the length of LEFT(SHA-256(pin), 16), the form in which a PIN is kept.
	PINHashLen = 16
	// DefaultPINRetries is the retry counter of a key that has never had a PIN set (CTAP 2.1 §6.5.2.2).
	DefaultPINRetries = 8
	// MaxBlobNameLen bounds the names accepted by PutBlob.
	MaxBlobNameLen = 255
	// DefaultCounterReserve is how many signature counter values are reserved per fsync. One fsync
	// costs about 2 ms here, so 16384 values keep it near 0.1 µs per assertion; a crash makes the
	// counter jump by at most this much (a clean Close gives the unused values back), which leaves
	// room for 2^18 crashes before the 32-bit counter runs out.
	DefaultCounterReserve = 16384
	// DefaultLockTimeout is how long OpenFile waits for another process's lock on the file.
	DefaultLockTimeout = 200 * time.Millisecond
)

// InitialLargeBlobs is the serialized large-blob array of a key that has none stored: an empty
// CBOR array followed by LEFT(SHA-256(0x80), 16) (CTAP 2.1 §6.10.2).
var InitialLargeBlobs = []byte{
	0x80, 0x76, 0xbe, 0x8b, 0x52, 0x8d, 0x00, 0x75, 0xf7,
	0xaa, 0xe9, 0x8d, 0x6f, 0xa5, 0x7a, 0x6d, 0x3c,
}

// Sentinel errors; callers test them with errors.Is.
var (
	// ErrNotFound reports that the credential, fingerprint or blob asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrCorrupt reports a stored record that cannot be decoded or fails its invariants.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrInvalid reports a value the caller tried to store that breaks the store's invariants.
	ErrInvalid = errors.New("store: invalid value")
	// ErrUserMismatch reports an UpdateUser whose user.id differs from the credential's.
	ErrUserMismatch = errors.New("store: user id does not match the credential")
	// ErrCounterExhausted reports that the signature counter reached 2^32-1.
	ErrCounterExhausted = errors.New("store: signature counter exhausted")
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("store: closed")
	// ErrLocked reports a state file held open by another process (or another Store in this one).
	ErrLocked = errors.New("store: state file is locked by another process")
	// ErrPermissions reports a state file readable or writable by group or others.
	ErrPermissions = errors.New("store: state file permissions are too open")
	// ErrVersion reports a state file written by a newer, incompatible schema.
	ErrVersion = errors.New("store: unsupported state file version")
	// ErrNotState reports an existing file that is not a fidolab state file (empty, not a bbolt
	// database, or another program's database). It is never overwritten.
	ErrNotState = errors.New("not a fidolab state file")
	// ErrDamaged reports a state file whose structure is broken (truncated, damaged pages).
	ErrDamaged = errors.New("state file damaged")
	// ErrSealed reports a sealed state file opened without its state key.
	ErrSealed = errors.New("the state file is sealed: give its key with --state-key-file FILE (or FIDOLAB_STATE_KEY_FILE)")
	// ErrWrongKey reports a sealed state file opened with a key it was not sealed with.
	ErrWrongKey = errors.New("the state file is sealed with a different key than the one given")
	// ErrNotSealed reports a state key given for a state file that is not sealed.
	ErrNotSealed = errors.New("the state file is not sealed, but a state key was given")
)

// Credential is a resident (discoverable) credential.
type Credential struct {
	ID              []byte // credential ID, 1..MaxCredentialIDLen bytes, unique in the store
	RPID            string
	RPName          string
	UserID          []byte // full user.id; (RPID, UserID) identifies the slot a credential occupies
	UserName        string
	UserDisplayName string
	Alg             int    // COSE algorithm identifier
	PrivateKey      []byte // secret
	CredProtect     uint8  // 0 (unset) or 1..3
	HMACSecret      bool
	CredRandomUV    []byte // secret, empty or 32 bytes
	CredRandomNoUV  []byte // secret, empty or 32 bytes
	CredBlob        []byte
	LargeBlobKey    []byte // secret
	Created         uint64 // assigned by PutResident; strictly increasing, so larger is newer
}

// String describes c without any secret material. Value receivers, so that printing a
// Credential value (not only a pointer) is covered too.
func (c Credential) String() string {
	return fmt.Sprintf("credential{id=%x rp=%q user=%x name=%q alg=%d credProtect=%d hmacSecret=%t created=%d}",
		c.ID, c.RPID, c.UserID, c.UserName, c.Alg, c.CredProtect, c.HMACSecret, c.Created)
}

// GoString keeps %#v from printing secrets.
func (c Credential) GoString() string { return c.String() }

// LogValue keeps slog from printing secrets.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// RP summarises the resident credentials of one relying party.
type RP struct {
	ID          string
	Name        string // RPName of the newest credential that carries one
	Credentials int
}

// PIN is the key's PIN state. A key without a PIN has Set false and Retries DefaultPINRetries.
type PIN struct {
	Set         bool
	Hash        []byte // LEFT(SHA-256(pin), 16); secret
	CodePoints  int    // length of the current PIN in Unicode code points, for setMinPINLength
	Retries     int    // persistent retry counter, 0..DefaultPINRetries
	ForceChange bool   // forcePINChange: the PIN must be changed before it is used
}

// String describes p without the hash.
func (p PIN) String() string {
	return fmt.Sprintf("pin{set=%t codePoints=%d retries=%d forceChange=%t}", p.Set, p.CodePoints, p.Retries, p.ForceChange)
}

// GoString keeps %#v from printing the hash.
func (p PIN) GoString() string { return p.String() }

// LogValue keeps slog from printing the hash.
func (p PIN) LogValue() slog.Value { return slog.StringValue(p.String()) }

// Settings are the authenticatorConfig settings. The zero value is a freshly reset key;
// MinPINLength 0 means "the persona's default".
type Settings struct {
	AlwaysUV              bool
	EnterpriseAttestation bool
	MinPINLength          int
	MinPINLengthRPIDs     []string // RPs allowed to read the minimum PIN length (minPinLength extension)
}

// Fingerprint is one enrolled (emulated) fingerprint template.
type Fingerprint struct {
	TemplateID   []byte
	FriendlyName string
}

// Store is an emulated key's persistent state. All methods are safe for concurrent use. Values
// passed in and returned are copies: mutating them never changes the store.
type Store interface {
	// Secrets returns the 32-byte master secret, created on first open and replaced by Reset.
	Secrets() ([]byte, error)

	// PutResident inserts c, replacing any credential with the same ID or the same (RPID,
	// UserID). It assigns c.Created, making c the newest credential.
	PutResident(c *Credential) error
	// Resident returns rpID's credentials, newest first.
	Resident(rpID string) ([]*Credential, error)
	// ResidentByID returns the credential with this ID, or ErrNotFound.
	ResidentByID(id []byte) (*Credential, error)
	// ResidentRPs returns one entry per RP with credentials, the RP of the newest credential first.
	ResidentRPs() ([]RP, error)
	// CountResident returns the number of resident credentials.
	CountResident() (int, error)
	// DeleteResident removes the credential with this ID, or returns ErrNotFound.
	DeleteResident(id []byte) error
	// UpdateUser replaces the user name and display name of credential id; userID must equal
	// the credential's (ErrUserMismatch otherwise). It does not change the ordering.
	UpdateUser(id []byte, name, displayName string, userID []byte) error

	// PIN returns the PIN state.
	PIN() (PIN, error)
	// PutPIN replaces the PIN state.
	PutPIN(PIN) error

	// Settings returns the authenticatorConfig settings.
	Settings() (Settings, error)
	// PutSettings replaces the authenticatorConfig settings.
	PutSettings(Settings) error

	// Fingerprints returns the enrolled fingerprints in enrollment order.
	Fingerprints() ([]Fingerprint, error)
	// PutFingerprint enrolls f, or renames the template with the same ID in place.
	PutFingerprint(f Fingerprint) error
	// DeleteFingerprint removes a template, or returns ErrNotFound.
	DeleteFingerprint(templateID []byte) error

	// LargeBlobs returns the serialized large-blob array (InitialLargeBlobs if none was stored).
	LargeBlobs() ([]byte, error)
	// PutLargeBlobs replaces the serialized large-blob array.
	PutLargeBlobs([]byte) error

	// NextSignCount returns the next signature counter value. Values are strictly increasing
	// for the life of the state, across Reset, restarts and crashes (gaps are allowed).
	NextSignCount() (uint32, error)

	// Blob returns a named value kept across Reset (a persona's attestation CA), or ErrNotFound.
	Blob(name string) ([]byte, error)
	// PutBlob stores a named value kept across Reset.
	PutBlob(name string, b []byte) error

	// Reset wipes credentials, PIN, settings, fingerprints and large blobs and replaces the
	// master secret. Named blobs and the signature counter survive.
	Reset() error
	// Close releases the store; a file-backed store gives up its lock.
	Close() error
}

// Option configures OpenFile and NewMemory.
type Option func(*options)

type options struct {
	counterReserve uint32
	lockTimeout    time.Duration
	key            *StateKey
	noSync         bool // tests that throw files away skip fsync
}

func defaultOptions(opts []Option) options {
	o := options{counterReserve: DefaultCounterReserve, lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.counterReserve == 0 {
		o.counterReserve = 1
	}
	return o
}

// WithCounterReserve sets how many signature counter values one fsync reserves. Larger values
// make NextSignCount cheaper and the jump after a restart or crash bigger.
func WithCounterReserve(n uint32) Option { return func(o *options) { o.counterReserve = n } }

// WithLockTimeout sets how long OpenFile waits for a lock held by another process.
func WithLockTimeout(d time.Duration) Option { return func(o *options) { o.lockTimeout = d } }
