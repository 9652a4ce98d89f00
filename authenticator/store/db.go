package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Keys in bucketMeta.
var (
	keyVersion    = []byte("version")
	keyMaster     = []byte("master")
	keyCountMark  = []byte("signcount") // every counter value ever handed out is ≤ this mark
	keySeq        = []byte("seq")       // last creation/enrollment sequence number
	keyPIN        = []byte("pin")
	keySettings   = []byte("settings")
	keyLargeBlobs = []byte("largeblobs")
)

const schemaVersion = 1

// db is the Store implementation, written once over a backend.
type db struct {
	b backend
	o options

	life   sync.RWMutex // read-held by every call, write-held by Close
	closed bool

	counter sync.Mutex // guards cur and limit
	cur     uint64     // last signature counter value handed out
	limit   uint64     // persisted mark: values up to it may be handed out without a write

	// writes counts finished write transactions (committed or not). Settings, which every
	// getAssertion consults for alwaysUv, caches its last read tagged with this count, so a
	// read-only request skips a transaction and a decode while no write can have changed it.
	writes   atomic.Uint64
	cacheMu  sync.Mutex
	cacheOK  bool
	cacheGen uint64 // writes when cached was read
	cached   Settings
}

// NewMemory returns a store that keeps its state in process memory, with the same semantics
// as a file-backed one.
func NewMemory(opts ...Option) Store {
	s, err := open(newMemBackend(), defaultOptions(opts), true)
	if err != nil {
		// Only crypto/rand failing can get here, and the runtime treats that as fatal already.
		panic(fmt.Sprintf("store: new memory store: %v", err))
	}
	return s
}

// open initialises a fresh backend or validates an existing one, then continues the signature
// counter above the persisted mark: whatever the previous process handed out before it stopped
// (cleanly or not) is at most that mark. An existing backend without fidolab's schema version is
// not a state (ErrNotState) and is left untouched.
func open(b backend, o options, fresh bool) (*db, error) {
	var version, seal []byte
	err := b.view(func(t txn) error {
		version, seal = bytes.Clone(t.get(bucketMeta, keyVersion)), bytes.Clone(t.get(bucketMeta, keySeal))
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case version == nil && !fresh:
		return nil, fmt.Errorf("%w: a bbolt database without fidolab's records (another program's file?)", ErrNotState)
	case version != nil:
		ver, err := decodeUint("schema version", version)
		if err != nil {
			return nil, err
		}
		if ver != schemaVersion {
			return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, ver, schemaVersion)
		}
	}
	if err := b.init(); err != nil {
		return nil, err
	}
	var sealRec []byte
	switch {
	case version == nil && o.key != nil:
		var sl *sealer
		if sl, sealRec, err = newSealRecord(o.key); err != nil {
			return nil, err
		}
		b = &sealedBackend{backend: b, s: sl}
	case seal != nil && o.key == nil:
		return nil, ErrSealed
	case seal == nil && o.key != nil:
		return nil, fmt.Errorf("%w: drop --state-key-file, or seal the file first with `fidolab key seal`", ErrNotSealed)
	case seal != nil:
		sl, err := openSealRecord(o.key, seal)
		if err != nil {
			return nil, err
		}
		b = &sealedBackend{backend: b, s: sl}
	}
	master, err := newMaster()
	if err != nil {
		return nil, err
	}
	var mark uint64
	err = b.update(func(t txn) error {
		if version == nil {
			if err := t.put(bucketMeta, keyVersion, encodeUint(schemaVersion)); err != nil {
				return err
			}
			if sealRec != nil {
				if err := t.put(bucketMeta, keySeal, sealRec); err != nil {
					return err
				}
			}
			return t.put(bucketMeta, keyMaster, encodeRaw(master))
		}
		if _, err := readMaster(t); err != nil {
			return err
		}
		var err error
		mark, err = decodeUint("signature counter", t.get(bucketMeta, keyCountMark))
		return err
	})
	clear(master)
	if err != nil {
		return nil, err
	}
	if mark > math.MaxUint32 {
		return nil, fmt.Errorf("%w: signature counter mark %d out of range", ErrCorrupt, mark)
	}
	return &db{b: b, o: o, cur: mark, limit: mark}, nil
}

func newMaster() ([]byte, error) {
	m := make([]byte, MasterSecretLen)
	if _, err := rand.Read(m); err != nil {
		return nil, fmt.Errorf("store: master secret: %w", err)
	}
	return m, nil
}

func readMaster(t txn) ([]byte, error) {
	m, err := decodeRaw("master secret", t.get(bucketMeta, keyMaster))
	if err != nil {
		return nil, err
	}
	if len(m) != MasterSecretLen {
		return nil, fmt.Errorf("%w: master secret has %d bytes", ErrCorrupt, len(m))
	}
	return m, nil
}

// view and update hold the life lock so Close cannot run under a transaction.
func (s *db) view(fn func(txn) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.b.view(fn)
}

func (s *db) update(fn func(txn) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return ErrClosed
	}
	// Counted after the transaction ends, so a reader that saw the old count cannot tag a value
	// read before the commit as current.
	defer s.writes.Add(1)
	return s.b.update(fn)
}

func nextSeq(t txn) (uint64, error) {
	seq, err := decodeUint("sequence", t.get(bucketMeta, keySeq))
	if err != nil {
		return 0, err
	}
	seq++
	return seq, t.put(bucketMeta, keySeq, encodeUint(seq))
}

func (s *db) Secrets() (master []byte, err error) {
	err = s.view(func(t txn) error {
		master, err = readMaster(t)
		return err
	})
	return master, err
}

func (s *db) PutResident(c *Credential) error {
	if c == nil {
		return fmt.Errorf("%w: nil credential", ErrInvalid)
	}
	if err := validateCredential(c); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var created uint64
	err := s.update(func(t txn) error {
		seq, err := nextSeq(t)
		if err != nil {
			return err
		}
		uk := userKey(c.RPID, c.UserID)
		// The slot's previous occupant goes, and so does a credential with the same ID in another
		// slot, so both indexes stay one-to-one.
		if old := t.get(bucketUser, uk); old != nil && !bytes.Equal(old, c.ID) {
			if err := unlinkCredential(t, bytes.Clone(old)); err != nil {
				return err
			}
		}
		if err := unlinkCredential(t, c.ID); err != nil {
			return err
		}
		rec := *c
		rec.Created = seq
		enc, err := encodeCredential(&rec)
		if err != nil {
			return err
		}
		if err := t.put(bucketCred, c.ID, enc); err != nil {
			return err
		}
		created = seq
		return t.put(bucketUser, uk, c.ID)
	})
	if err == nil {
		c.Created = created
	}
	return err
}

// unlinkCredential removes a credential and its slot index entry; absent is not an error. A
// record too damaged to decode is still removed, its index entry found by scanning.
func unlinkCredential(t txn, id []byte) error {
	v := t.get(bucketCred, id)
	if v == nil {
		return nil
	}
	var stale [][]byte
	if c, err := loadCredential(t, id, v); err == nil {
		stale = append(stale, userKey(c.RPID, c.UserID))
	} else {
		err := t.scan(bucketUser, nil, func(k, v []byte) error {
			if bytes.Equal(v, id) {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, k := range stale {
		if err := t.del(bucketUser, k); err != nil {
			return err
		}
	}
	return t.del(bucketCred, id)
}

// loadCredential decodes the record stored under id and checks it against both indexes, so a
// record that decodes but no longer matches where it is filed is reported, not returned.
func loadCredential(t txn, id, v []byte) (*Credential, error) {
	c, err := decodeCredential(v)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c.ID, id) || !bytes.Equal(t.get(bucketUser, userKey(c.RPID, c.UserID)), id) {
		return nil, fmt.Errorf("%w: credential %x does not match its index", ErrCorrupt, id)
	}
	return c, nil
}

func (s *db) Resident(rpID string) ([]*Credential, error) {
	var out []*Credential
	err := s.view(func(t txn) error {
		return t.scan(bucketUser, rpPrefix(rpID), func(_, id []byte) error {
			v := t.get(bucketCred, id)
			if v == nil {
				return fmt.Errorf("%w: index names a missing credential %x", ErrCorrupt, id)
			}
			c, err := loadCredential(t, id, v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortNewestFirst(out)
	return out, nil
}

func sortNewestFirst(cs []*Credential) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Created > cs[j].Created })
}

func (s *db) ResidentByID(id []byte) (c *Credential, err error) {
	err = s.view(func(t txn) error {
		v := t.get(bucketCred, id)
		if v == nil {
			return ErrNotFound
		}
		c, err = loadCredential(t, id, v)
		return err
	})
	return c, err
}

func (s *db) allResident() ([]*Credential, error) {
	var out []*Credential
	err := s.view(func(t txn) error {
		return t.scan(bucketCred, nil, func(id, v []byte) error {
			c, err := loadCredential(t, id, v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	sortNewestFirst(out)
	return out, err
}

func (s *db) ResidentRPs() ([]RP, error) {
	all, err := s.allResident()
	if err != nil {
		return nil, err
	}
	var rps []RP
	index := make(map[string]int)
	for _, c := range all { // newest first, so the first credential seen sets the order
		i, ok := index[c.RPID]
		if !ok {
			i = len(rps)
			index[c.RPID] = i
			rps = append(rps, RP{ID: c.RPID})
		}
		rps[i].Credentials++
		if rps[i].Name == "" {
			rps[i].Name = c.RPName
		}
	}
	return rps, nil
}

func (s *db) CountResident() (n int, err error) {
	err = s.view(func(t txn) error {
		return t.scan(bucketCred, nil, func(_, _ []byte) error {
			n++
			return nil
		})
	})
	return n, err
}

func (s *db) DeleteResident(id []byte) error {
	return s.update(func(t txn) error {
		if t.get(bucketCred, id) == nil {
			return ErrNotFound
		}
		return unlinkCredential(t, id)
	})
}

func (s *db) UpdateUser(id []byte, name, displayName string, userID []byte) error {
	return s.update(func(t txn) error {
		v := t.get(bucketCred, id)
		if v == nil {
			return ErrNotFound
		}
		c, err := loadCredential(t, id, v)
		if err != nil {
			return err
		}
		if !bytes.Equal(c.UserID, userID) {
			return ErrUserMismatch
		}
		c.UserName, c.UserDisplayName = name, displayName
		if err := validateCredential(c); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		enc, err := encodeCredential(c)
		if err != nil {
			return err
		}
		return t.put(bucketCred, id, enc)
	})
}

func (s *db) PIN() (p PIN, err error) {
	err = s.view(func(t txn) error {
		v := t.get(bucketMeta, keyPIN)
		if v == nil {
			p = PIN{Retries: DefaultPINRetries}
			return nil
		}
		p, err = decodePIN(v)
		return err
	})
	return p, err
}

func (s *db) PutPIN(p PIN) error {
	if err := validatePIN(p); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	enc, err := encodePIN(p)
	if err != nil {
		return err
	}
	return s.update(func(t txn) error { return t.put(bucketMeta, keyPIN, enc) })
}

func (s *db) Settings() (Settings, error) {
	gen := s.writes.Load()
	s.cacheMu.Lock()
	hit, st := s.cacheOK && s.cacheGen == gen, s.cached
	s.cacheMu.Unlock()
	if hit {
		s.life.RLock()
		closed := s.closed
		s.life.RUnlock()
		if closed {
			return Settings{}, ErrClosed
		}
	} else {
		var err error
		if st, err = s.readSettings(); err != nil {
			return Settings{}, err
		}
		s.cacheMu.Lock()
		s.cacheOK, s.cacheGen, s.cached = true, gen, st
		s.cacheMu.Unlock()
	}
	st.MinPINLengthRPIDs = slices.Clone(st.MinPINLengthRPIDs) // callers own what they get
	return st, nil
}

// readSettings reads the settings record; an absent one means the defaults. It is apart from
// Settings so that the variables its closure captures (and so moves to the heap) are not
// Settings' own: a cache hit, once per getAssertion, allocates nothing.
func (s *db) readSettings() (Settings, error) {
	var st Settings
	err := s.view(func(t txn) error {
		v := t.get(bucketMeta, keySettings)
		if v == nil {
			return nil
		}
		var err error
		st, err = decodeSettings(v)
		return err
	})
	return st, err
}

func (s *db) PutSettings(st Settings) error {
	if err := validateSettings(st); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	enc, err := encodeSettings(st)
	if err != nil {
		return err
	}
	return s.update(func(t txn) error { return t.put(bucketMeta, keySettings, enc) })
}

func (s *db) Fingerprints() ([]Fingerprint, error) {
	var recs []fingerRecord
	err := s.view(func(t txn) error {
		return t.scan(bucketFinger, nil, func(_, v []byte) error {
			r, err := decodeFinger(v)
			if err != nil {
				return err
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	out := make([]Fingerprint, len(recs))
	for i, r := range recs {
		out[i] = Fingerprint{TemplateID: r.TemplateID, FriendlyName: r.FriendlyName}
	}
	return out, nil
}

func (s *db) PutFingerprint(f Fingerprint) error {
	if err := validateFingerprint(f); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s.update(func(t txn) error {
		r := fingerRecord{TemplateID: f.TemplateID, FriendlyName: f.FriendlyName}
		if v := t.get(bucketFinger, f.TemplateID); v != nil {
			old, err := decodeFinger(v)
			if err != nil {
				return err
			}
			r.Seq = old.Seq // a rename keeps the template's place
		} else {
			seq, err := nextSeq(t)
			if err != nil {
				return err
			}
			r.Seq = seq
		}
		enc, err := encodeFinger(r)
		if err != nil {
			return err
		}
		return t.put(bucketFinger, f.TemplateID, enc)
	})
}

func (s *db) DeleteFingerprint(templateID []byte) error {
	return s.update(func(t txn) error {
		if t.get(bucketFinger, templateID) == nil {
			return ErrNotFound
		}
		return t.del(bucketFinger, templateID)
	})
}

func (s *db) LargeBlobs() (b []byte, err error) {
	err = s.view(func(t txn) error {
		v := t.get(bucketMeta, keyLargeBlobs)
		if v == nil {
			b = bytes.Clone(InitialLargeBlobs)
			return nil
		}
		b, err = decodeRaw("large blobs", v)
		return err
	})
	return b, err
}

func (s *db) PutLargeBlobs(b []byte) error {
	if len(b) < len(InitialLargeBlobs) {
		return fmt.Errorf("%w: a serialized large-blob array has at least %d bytes", ErrInvalid, len(InitialLargeBlobs))
	}
	return s.update(func(t txn) error { return t.put(bucketMeta, keyLargeBlobs, encodeRaw(b)) })
}

func (s *db) Blob(name string) (b []byte, err error) {
	if err := validBlobName(name); err != nil {
		return nil, err
	}
	err = s.view(func(t txn) error {
		v := t.get(bucketBlob, []byte(name))
		if v == nil {
			return ErrNotFound
		}
		b, err = decodeRaw("blob", v)
		return err
	})
	return b, err
}

func (s *db) PutBlob(name string, b []byte) error {
	if err := validBlobName(name); err != nil {
		return err
	}
	return s.update(func(t txn) error { return t.put(bucketBlob, []byte(name), encodeRaw(b)) })
}

func validBlobName(name string) error {
	if name == "" || len(name) > MaxBlobNameLen {
		return fmt.Errorf("%w: blob name length %d not in 1..%d", ErrInvalid, len(name), MaxBlobNameLen)
	}
	return nil
}

func (s *db) Reset() error {
	master, err := newMaster()
	if err != nil {
		return err
	}
	return s.update(func(t txn) error {
		for _, b := range [][]byte{bucketCred, bucketUser, bucketFinger} {
			if err := t.clear(b); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{keyPIN, keySettings, keyLargeBlobs} {
			if err := t.del(bucketMeta, k); err != nil {
				return err
			}
		}
		return t.put(bucketMeta, keyMaster, encodeRaw(master))
	})
}
