package store

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSecrets(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		m1, err := s.Secrets()
		require.NoError(t, err)
		require.Len(t, m1, MasterSecretLen)
		require.NotEqual(t, make([]byte, MasterSecretLen), m1)

		m1[0] ^= 0xFF // a caller scribbling on the copy must not change the key
		m1[0] ^= 0xFF
		s.reopen(t, false)
		m2, err := s.Secrets()
		require.NoError(t, err)
		require.Equal(t, m1, m2, "master secret survives a restart")

		require.NoError(t, s.Reset())
		m3, err := s.Secrets()
		require.NoError(t, err)
		require.Len(t, m3, MasterSecretLen)
		require.NotEqual(t, m1, m3, "Reset rotates the master secret")
	})
}

func TestResidentNewestFirst(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		alice, bob, carol := testCred("example.com", []byte("alice")), testCred("example.com", []byte("bob")), testCred("example.com", []byte("carol"))
		other := testCred("other.org", []byte("alice"))
		for _, c := range []*Credential{alice, bob, other, carol} {
			require.NoError(t, s.PutResident(c))
			require.NotZero(t, c.Created)
		}
		got, err := s.Resident("example.com")
		require.NoError(t, err)
		require.Equal(t, ids([]*Credential{carol, bob, alice}), ids(got))

		// Re-registering alice replaces her credential and makes it the newest.
		alice2 := testCred("example.com", []byte("alice"))
		require.NoError(t, s.PutResident(alice2))
		got, err = s.Resident("example.com")
		require.NoError(t, err)
		require.Equal(t, ids([]*Credential{alice2, carol, bob}), ids(got))
		_, err = s.ResidentByID(alice.ID)
		require.ErrorIs(t, err, ErrNotFound)

		n, err := s.CountResident()
		require.NoError(t, err)
		require.Equal(t, 4, n)

		// The order survives a restart: it comes from the persisted creation sequence.
		s.reopen(t, false)
		got, err = s.Resident("example.com")
		require.NoError(t, err)
		require.Equal(t, ids([]*Credential{alice2, carol, bob}), ids(got))
		dave := testCred("example.com", []byte("dave"))
		require.NoError(t, s.PutResident(dave))
		require.Greater(t, dave.Created, alice2.Created)
	})
}

func TestResidentFullUserIDKeying(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		slots := []struct {
			rp   string
			user []byte
		}{
			{"example.com", []byte{0x01}},
			{"example.com", []byte{0x01, 0x02}},
			{"example.com", []byte{0x01, 0x02, 0x03}},
			{"example.com", append(bytes.Repeat([]byte{0xEE}, 63), 0x00)},
			{"example.com", append(bytes.Repeat([]byte{0xEE}, 63), 0x01)},
			{"a", []byte("bc")}, // must not meet ("ab", "c")
			{"ab", []byte("c")},
			{"example.co", []byte{0x01}}, // an RP ID that is a prefix of another
		}
		var creds []*Credential
		for _, sl := range slots {
			c := testCred(sl.rp, sl.user)
			require.NoError(t, s.PutResident(c))
			creds = append(creds, c)
		}
		n, err := s.CountResident()
		require.NoError(t, err)
		require.Equal(t, len(slots), n, "no slot overwrote another")
		for _, c := range creds {
			got, err := s.ResidentByID(c.ID)
			require.NoError(t, err)
			require.Equal(t, c.UserID, got.UserID)
		}
		got, err := s.Resident("example.com")
		require.NoError(t, err)
		require.Len(t, got, 5)
		got, err = s.Resident("a")
		require.NoError(t, err)
		require.Equal(t, ids(creds[5:6]), ids(got))
		got, err = s.Resident("example.co")
		require.NoError(t, err)
		require.Equal(t, ids(creds[7:8]), ids(got))
		got, err = s.Resident("nobody.example")
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

func TestResidentSameIDMovesSlot(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		a := testCred("example.com", []byte("a"))
		require.NoError(t, s.PutResident(a))
		b := testCred("example.com", []byte("b"))
		b.ID = bytes.Clone(a.ID)
		require.NoError(t, s.PutResident(b))
		got, err := s.Resident("example.com")
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, []byte("b"), got[0].UserID)
		n, err := s.CountResident()
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestResidentRoundTripAndCopies(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		c := testCred("example.com", []byte("u"))
		require.NoError(t, s.PutResident(c))
		want := *c
		want.PrivateKey = bytes.Clone(c.PrivateKey)
		c.PrivateKey[0] ^= 0xFF // caller's buffer changes after the put
		got, err := s.ResidentByID(c.ID)
		require.NoError(t, err)
		require.Equal(t, &want, got)
		got.UserName = "mallory"
		got.PrivateKey[1] ^= 0xFF
		again, err := s.ResidentByID(c.ID)
		require.NoError(t, err)
		require.Equal(t, &want, again)

		minimal := &Credential{ID: []byte{1}, RPID: "r", UserID: []byte{0}, Alg: -8, PrivateKey: []byte{9}}
		require.NoError(t, s.PutResident(minimal))
		got, err = s.ResidentByID([]byte{1})
		require.NoError(t, err)
		require.Equal(t, minimal, got)
	})
}

func TestResidentRejectsInvalid(t *testing.T) {
	t.Parallel()
	mut := func(f func(c *Credential)) *Credential {
		c := testCred("example.com", []byte("u"))
		f(c)
		return c
	}
	cases := map[string]*Credential{
		"nil":               nil,
		"empty id":          mut(func(c *Credential) { c.ID = nil }),
		"id too long":       mut(func(c *Credential) { c.ID = make([]byte, MaxCredentialIDLen+1) }),
		"empty rp":          mut(func(c *Credential) { c.RPID = "" }),
		"empty user":        mut(func(c *Credential) { c.UserID = nil }),
		"user id too long":  mut(func(c *Credential) { c.UserID = make([]byte, MaxUserIDLen+1) }),
		"no private key":    mut(func(c *Credential) { c.PrivateKey = nil }),
		"credProtect 4":     mut(func(c *Credential) { c.CredProtect = 4 }),
		"credRandom 31":     mut(func(c *Credential) { c.CredRandomUV = make([]byte, 31) }),
		"name not utf8":     mut(func(c *Credential) { c.UserName = "\xff" }),
		"credBlob too long": mut(func(c *Credential) { c.CredBlob = make([]byte, maxCredBlobLen+1) }),
	}
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		for name, c := range cases {
			require.ErrorIs(t, s.PutResident(c), ErrInvalid, name)
		}
		id := make([]byte, MaxCredentialIDLen)
		ok := mut(func(c *Credential) { c.ID = id; c.UserID = make([]byte, MaxUserIDLen) })
		require.NoError(t, s.PutResident(ok), "the limits themselves are accepted")
		n, err := s.CountResident()
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestResidentRPs(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		rps, err := s.ResidentRPs()
		require.NoError(t, err)
		require.Empty(t, rps)
		a1 := testCred("a.example", []byte("1"))
		a1.RPName = ""
		require.NoError(t, s.PutResident(a1))
		require.NoError(t, s.PutResident(testCred("b.example", []byte("1"))))
		require.NoError(t, s.PutResident(testCred("a.example", []byte("2"))))
		rps, err = s.ResidentRPs()
		require.NoError(t, err)
		require.Equal(t, []RP{
			{ID: "a.example", Name: "RP a.example", Credentials: 2},
			{ID: "b.example", Name: "RP b.example", Credentials: 1},
		}, rps)
	})
}

func TestDeleteAndUpdateUser(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		a, b := testCred("example.com", []byte("a")), testCred("example.com", []byte("b"))
		require.NoError(t, s.PutResident(a))
		require.NoError(t, s.PutResident(b))

		require.NoError(t, s.UpdateUser(a.ID, "new-name", "", a.UserID))
		require.ErrorIs(t, s.UpdateUser(a.ID, "x", "y", []byte("b")), ErrUserMismatch)
		require.ErrorIs(t, s.UpdateUser([]byte("nope"), "x", "y", a.UserID), ErrNotFound)
		require.ErrorIs(t, s.UpdateUser(a.ID, "\xff", "", a.UserID), ErrInvalid)
		got, err := s.Resident("example.com")
		require.NoError(t, err)
		require.Equal(t, ids([]*Credential{b, a}), ids(got), "an update does not reorder")
		require.Equal(t, "new-name", got[1].UserName)
		require.Empty(t, got[1].UserDisplayName)

		require.NoError(t, s.DeleteResident(b.ID))
		require.ErrorIs(t, s.DeleteResident(b.ID), ErrNotFound)
		_, err = s.ResidentByID(b.ID)
		require.ErrorIs(t, err, ErrNotFound)
		got, err = s.Resident("example.com")
		require.NoError(t, err)
		require.Equal(t, ids([]*Credential{a}), ids(got))
		// The slot is free again.
		b2 := testCred("example.com", []byte("b"))
		require.NoError(t, s.PutResident(b2))
		n, err := s.CountResident()
		require.NoError(t, err)
		require.Equal(t, 2, n)
	})
}
