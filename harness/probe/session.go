package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/fidolab/fidolab/harness/keyprofile"
)

// session is one probe of one key.
type session struct {
	k  keyconn.Key
	o  Options
	pr *keyprofile.Profile

	init ctaphid.InitInfo
	info *ctap.GetInfoResponse // nil for a key without CTAP2
	// infoAt is how long getInfo took (the key's slowness when nothing waits for a person).
	infoAt time.Duration
	// pin is the key's PIN as far as the probe knows it.
	pin string
	// erased is set once a destructive check reset the key: it must be reset again at the end.
	erased bool
	// slowest is the longest silence measured while the key worked on a request.
	// reg is the probe's non-resident registration, shared by several checks.
	reg registration
	// emptyRemaining is getInfo's remainingDiscoverableCredentials right after a reset (-1: unknown).
	emptyRemaining int
	// made counts the discoverable credentials the probe made since its reset.
	made int
}

// now reads the key's clock (a virtual one for an emulated key), else the probe's.
func (s *session) now() time.Time {
	if c, ok := s.k.(keyconn.Clocked); ok {
		return c.Now()
	}
	return s.o.Clock.Now()
}

// timedConn records when the key sent each report, on the key's clock when the connection knows
// it (an emulated key's virtual time), so silences can be measured.
type timedConn struct {
	inner ctaphid.ReportConn
	now   func() time.Time
	mu    sync.Mutex
	sent  time.Time   // when the host wrote its last report
	got   []time.Time // when the key's reports came since
}

// WriteReport notes the time, then writes: the key may answer before the write returns.
func (c *timedConn) WriteReport(ctx context.Context, r []byte) error {
	c.mu.Lock()
	c.sent, c.got = c.now(), nil
	c.mu.Unlock()
	return c.inner.WriteReport(ctx, r)
}

func (c *timedConn) ReadReport(ctx context.Context) ([]byte, error) {
	var (
		r   []byte
		at  time.Time
		err error
	)
	if t, ok := c.inner.(ctaphid.TimedReportConn); ok {
		r, at, err = t.ReadReportAt(ctx)
	} else {
		r, err = c.inner.ReadReport(ctx)
		at = c.now()
	}
	if err == nil {
		c.mu.Lock()
		c.got = append(c.got, at)
		c.mu.Unlock()
	}
	return r, err
}

func (c *timedConn) Close() error { return c.inner.Close() }

// silence returns the longest time the key said nothing between the host's last report and the
// key's last one, and how long the whole answer took.
func (c *timedConn) silence() (longest, total time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.sent
	for _, t := range c.got {
		if d := t.Sub(prev); d > longest {
			longest = d
		}
		prev = t
	}
	if len(c.got) > 0 {
		total = c.got[len(c.got)-1].Sub(c.sent)
	}
	return longest, total
}

// conn is one connection of the probe with its CTAP client.
type conn struct {
	c     *client.Client
	hid   *ctaphid.Client
	timed *timedConn
	keeps int // KEEPALIVEs seen
	mu    sync.Mutex
}

func (cn *conn) close() { _ = cn.timed.Close() }

// dial opens a connection and allocates a channel.
func (s *session) dial(ctx context.Context) (*conn, error) {
	raw, err := s.k.Conn(ctx)
	if err != nil {
		return nil, err
	}
	cn := &conn{timed: &timedConn{inner: raw, now: s.now}}
	cn.hid = ctaphid.NewClient(cn.timed, ctaphid.WithKeepalive(func(st byte) {
		cn.mu.Lock()
		cn.keeps++
		cn.mu.Unlock()
		if st == ctaphid.StatusUPNeeded && s.o.OnTouch != nil {
			s.o.OnTouch()
		}
	}))
	info, err := cn.hid.Init(ctx)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("%s: CTAPHID_INIT: %w", s.k.Describe(), err)
	}
	s.init = info
	cn.c = client.New(cn.hid)
	return cn, nil
}

// start opens the key and reads its getInfo.
func (s *session) start(ctx context.Context) error {
	cn, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer cn.close()
	s.pr.Device = &keyprofile.DeviceInfo{Major: s.init.Major, Minor: s.init.Minor, Build: s.init.Build, Capabilities: s.init.Capabilities}
	if s.init.Capabilities&ctaphid.CapCBOR == 0 {
		return nil
	}
	info, err := cn.c.GetInfo(ctx)
	var ce *client.CommandError
	switch {
	case errors.As(err, &ce):
		return nil // CBOR advertised but refused: reported by the ctap2 check
	case err != nil:
		return fmt.Errorf("%s: getInfo: %w", s.k.Describe(), err)
	}
	s.info = info
	s.pr.Info = info
	_, s.infoAt = cn.timed.silence()
	s.pin = s.o.PIN
	return nil
}

// identify fills the report's key description.
func (s *session) identify(k *KeyInfo) {
	if s.info != nil {
		k.AAGUID = keyprofile.AAGUIDString(s.info.AAGUID)
		k.Versions = s.info.Versions
	}
	k.Device = fmt.Sprintf("%d.%d.%d", s.init.Major, s.init.Minor, s.init.Build)
	if id, ok := s.k.(keyconn.Identified); ok {
		if h, ok := id.Identity(); ok {
			k.USB = fmt.Sprintf("%04x:%04x", h.VendorID, h.ProductID)
			k.Manufacturer, k.Product = h.Manufacturer, h.Product
			hid := h
			s.pr.HID = &hid
		}
	}
}

// profileFinish completes the profile: the quirks the probe measured.
func (s *session) profileFinish() {
	if s.infoAt >= 50*time.Millisecond {
		s.pr.Quirks.ProcessingDelayMs = int(s.infoAt / time.Millisecond)
	}
	if s.info != nil {
		s.pr.QuirksKnown = append(s.pr.QuirksKnown, "processingDelayMs")
	}
	if s.pr.Name == "" {
		switch {
		case s.pr.HID != nil && s.pr.HID.Product != "":
			s.pr.Name = slug(s.pr.HID.Product)
		case s.info != nil:
			s.pr.Name = "key-" + keyprofile.AAGUIDString(s.info.AAGUID)[:8]
		default:
			s.pr.Name = "probed-key"
		}
	}
}

// token gets a pinUvAuthToken with perms for rpID, when the key has a PIN the probe knows.
func (s *session) token(ctx context.Context, c *client.Client, perms uint64, rpID string) (*client.Token, error) {
	if v, _ := s.option("clientPin"); !v {
		return nil, nil
	}
	if s.pin == "" {
		return nil, errNoPIN
	}
	return c.GetPINToken(ctx, s.pin, perms, rpID)
}

var errNoPIN = errors.New("the key has a PIN the probe does not know: give --pin (or FIDOLAB_KEY_PIN), or --destructive to reset the key")

// probeRP is the relying party of the probe's own credentials: nobody's real site.
const probeRP = "probe.fidolab.invalid"

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func es256() []ctap.CredentialParam {
	alg := int64(-7)
	return []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}}
}

func slug(s string) string {
	var out []rune
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			out = append(out, r)
		case r >= 'A' && r <= 'Z':
			out = append(out, r+'a'-'A')
		case len(out) > 0 && out[len(out)-1] != '-':
			out = append(out, '-')
		}
	}
	for len(out) > 0 && out[len(out)-1] == '-' {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return "probed-key"
	}
	return string(out)
}
