package probe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/keyconn"
)

// replug power-cycles the key: its control API, an emulated key's power, or a person.
func (s *session) replug(ctx context.Context) error {
	r, ok := s.k.(keyconn.Replugger)
	if !ok || !keyconn.CanReplug(s.k) {
		return errNoReplug
	}
	return r.Replug(ctx)
}

var errNoReplug = errors.New("a reset needs a power-up first, and the key can be replugged neither through a control API " +
	"(socket:PATH,control=HOST:PORT) nor by a person (no terminal)")

// reset sends authenticatorReset on a fresh connection.
func (s *session) reset(ctx context.Context) error {
	cn, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer cn.close()
	return cn.c.Reset(ctx)
}

// refreshInfo reads getInfo again (the PIN and credentials changed what it says).
func (s *session) refreshInfo(ctx context.Context) {
	cn, err := s.dial(ctx)
	if err != nil {
		return
	}
	defer cn.close()
	if info, err := cn.c.GetInfo(ctx); err == nil {
		s.info = info
	}
}

// resetAfter replugs the key, lets d pass and resets it; it reports whether the reset was taken.
func (s *session) resetAfter(ctx context.Context, d time.Duration) (bool, error) {
	if err := s.replug(ctx); err != nil {
		return false, err
	}
	if d > 0 {
		if c, ok := s.k.(keyconn.Clocked); ok {
			c.Advance(d)
		} else if err := s.o.Clock.Sleep(ctx, d); err != nil {
			return false, err
		}
	}
	err := s.reset(ctx)
	switch {
	case err == nil:
		s.erased, s.pin, s.made = true, "", 0
		return true, nil
	case errors.Is(err, ctap.ErrNotAllowed):
		return false, nil
	}
	return false, err
}

func checkReset(ctx context.Context, s *session, c *Check) {
	if !keyconn.CanReplug(s.k) {
		c.Status, c.Skipped = Skip, errNoReplug.Error()
		return
	}
	ok, err := s.resetAfter(ctx, 0)
	switch {
	case err != nil:
		c.Status, c.Observed = Fail, "reset right after power-up: "+err.Error()
		return
	case !ok:
		c.Status, c.Observed = Fail, "reset refused right after power-up (CTAP2_ERR_NOT_ALLOWED): Settings › Manage › Reset fails with this key"
		return
	}
	s.refreshInfo(ctx)
	s.emptyRemaining = -1
	if r := s.info.RemainingDiscoverableCredentials; r != nil {
		s.emptyRemaining = int(*r)
	}
	if _, virtual := s.k.(keyconn.Clocked); virtual {
		// The key's clock is ours to move: measure the window to the millisecond. A reset sent t
		// after power-up reaches the key's check after its processing time, so the window is the
		// latest t taken plus that time.
		lo, hi := time.Duration(0), 121*time.Second
		for hi-lo > time.Millisecond {
			mid := (lo + hi) / 2
			took, err := s.resetAfter(ctx, mid)
			if err != nil {
				c.Status, c.Observed = Fail, "measuring the reset window: "+err.Error()
				return
			}
			if took {
				lo = mid
			} else {
				hi = mid
			}
		}
		if _, err := s.resetAfter(ctx, 0); err != nil { // leave it reset and freshly powered
			c.Status, c.Observed = Fail, err.Error()
			return
		}
		window := int(((lo + s.infoAt) + time.Second/2) / time.Second)
		c.Observed = fmt.Sprintf("reset taken right after power-up; the window is %d s (the last reset taken was sent %s after power-up, the key takes %s to answer)",
			window, ms(lo), ms(s.infoAt))
		never := hi >= 121*time.Second
		if never {
			c.Observed = "reset taken right after power-up and still 120 s after: no window"
		}
		s.pr.Quirks.ResetWindowSeconds = 0
		if window != 10 {
			s.pr.Quirks.ResetWindowSeconds = window
		}
		s.pr.QuirksKnown = append(s.pr.QuirksKnown, "resetWindowSeconds")
		switch {
		case window < 10:
			c.Status = Warn
			c.Details = append(c.Details, "shorter than the 10 s CTAP allows: a user who replugs and clicks Reset may be too slow")
		case never:
			c.Status = Warn
			c.Details = append(c.Details, "CTAP 2.1 §6.6 allows resets only within 10 s of power-up: malware could wipe this key")
		default:
			c.Status = Pass
		}
		return
	}
	took, err := s.resetAfter(ctx, 11*time.Second)
	switch {
	case err != nil:
		c.Status, c.Observed = Fail, "reset 11 s after power-up: "+err.Error()
	case took:
		c.Status, c.Observed = Warn, "reset taken right after power-up, and also 11 s after: the key's window is longer than CTAP's 10 s"
	default:
		c.Status, c.Observed = Pass, "reset taken right after power-up, refused 11 s after"
		s.pr.QuirksKnown = append(s.pr.QuirksKnown, "resetWindowSeconds")
	}
	if _, err := s.resetAfter(ctx, 0); err != nil {
		c.Details = append(c.Details, "the last reset failed: "+err.Error())
	}
}

func checkSetPIN(ctx context.Context, s *session, c *Check) {
	if _, ok := s.option("clientPin"); !ok {
		c.Status, c.Observed = Info, "no clientPin: the key has no PIN to set"
		return
	}
	pinSet, _ := s.option("clientPin")
	if !s.erased && pinSet {
		c.Status, c.Skipped = Skip, "the key could not be reset first, so its PIN (if any) is unknown"
		return
	}
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	if !pinSet {
		s.pinRetriesWithoutPIN(ctx, cn, c)
	}
	if !s.erased {
		c.Status, c.Skipped = Skip, "the key could not be reset first: its PIN is left unset"
		return
	}
	short := cn.c.SetPIN(ctx, "123")
	if errors.Is(short, ctap.ErrPINPolicyViolation) {
		c.Details = append(c.Details, "a 3-digit PIN was refused with CTAP2_ERR_PIN_POLICY_VIOLATION, as CTAP asks")
	} else {
		c.Details = append(c.Details, fmt.Sprintf("a 3-digit PIN: %v (CTAP asks CTAP2_ERR_PIN_POLICY_VIOLATION)", errOrOK(short)))
		if short == nil {
			c.Status, c.Observed = Fail, "the key took a 3-digit PIN: CTAP's minimum is 4"
			s.pin = "123"
			return
		}
	}
	if err := cn.c.SetPIN(ctx, ProbePIN); err != nil {
		c.Status, c.Observed = Fail, "setPIN: "+err.Error()
		return
	}
	s.pin = ProbePIN
	retries, _, err := cn.c.PINRetries(ctx)
	if err == nil {
		c.Details = append(c.Details, fmt.Sprintf("%d PIN retries", retries))
	}
	perms := uint64(ctap.PermMakeCredential | ctap.PermGetAssertion)
	if _, err := cn.c.GetPINToken(ctx, s.pin, perms, probeRP); err != nil {
		c.Status, c.Observed = Fail, "PIN set, but no token with it: "+err.Error()
		return
	}
	c.Status, c.Observed = Pass, fmt.Sprintf("PIN set (%d digits) and a token obtained with it", len(ProbePIN))
	s.refreshInfo(ctx)
}

// pinRetriesWithoutPIN measures what getPINRetries answers on a key without a PIN: CTAP 2.1
// does not say, and keys differ (persona quirk pinRetriesWithoutPin, docs/personas.md).
func (s *session) pinRetriesWithoutPIN(ctx context.Context, cn *conn, c *Check) {
	retries, _, err := cn.c.PINRetries(ctx)
	switch {
	case err == nil:
		s.pr.Quirks.PINRetriesWithoutPIN = true
		c.Details = append(c.Details, fmt.Sprintf("getPINRetries without a PIN answers the retry counter (%d), as OpenSK and trussed keys do", retries))
	case errors.Is(err, ctap.ErrPINNotSet):
		s.pr.Quirks.PINRetriesWithoutPIN = false
		c.Details = append(c.Details, "getPINRetries without a PIN answers CTAP2_ERR_PIN_NOT_SET, as current YubiKeys do")
	default:
		c.Details = append(c.Details, "getPINRetries without a PIN: "+err.Error())
		return
	}
	s.pr.QuirksKnown = append(s.pr.QuirksKnown, "pinRetriesWithoutPin")
}

func errOrOK(err error) string {
	if err == nil {
		return "taken"
	}
	return err.Error()
}

// makeResident makes a discoverable credential for rp and user, with UV when the key has a PIN.
func (s *session) makeResident(ctx context.Context, cn *conn, rp string, user *ctap.UserEntity, ext *ctap.MakeCredentialExtensions) (*client.MakeCredentialResult, error) {
	req := &ctap.MakeCredentialRequest{ClientDataHash: random(32), RP: &ctap.RPEntity{ID: rp}, User: user, PubKeyCredParams: es256(),
		Options: &ctap.Options{RK: ctap.Bool(true)}, Extensions: ext}
	tok, err := s.token(ctx, cn.c, ctap.PermMakeCredential, rp)
	if err != nil {
		return nil, err
	}
	if tok != nil {
		req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(req.ClientDataHash), tok.ProtocolParam()
	}
	res, err := cn.c.MakeCredential(ctx, req)
	if err == nil {
		s.made++
	}
	return res, err
}

// assertAll gets every discoverable credential of rp, with UV when the key has a PIN.
func (s *session) assertAll(ctx context.Context, cn *conn, rp string, uv bool) ([]*client.AssertionResult, error) {
	req := &ctap.GetAssertionRequest{RPID: rp, ClientDataHash: random(32)}
	if uv {
		tok, err := s.token(ctx, cn.c, ctap.PermGetAssertion, rp)
		if err != nil {
			return nil, err
		}
		if tok != nil {
			req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(req.ClientDataHash), tok.ProtocolParam()
		}
	}
	return cn.c.Assertions(ctx, req)
}

func checkAccountsOrder(ctx context.Context, s *session, c *Check) {
	if rk, _ := s.option("rk"); !rk {
		c.Status, c.Skipped = Skip, "the key has no discoverable credentials"
		return
	}
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	rp := "accounts." + probeRP
	names := []string{"alice@" + rp, "bob@" + rp, "carol@" + rp}
	for _, n := range names {
		if _, err := s.makeResident(ctx, cn, rp, &ctap.UserEntity{ID: []byte(n), Name: n, DisplayName: n}, nil); err != nil {
			c.Status, c.Observed = Fail, fmt.Sprintf("making %s's discoverable credential: %v", n, err)
			return
		}
	}
	all, err := s.assertAll(ctx, cn, rp, true)
	if err != nil {
		c.Status, c.Observed = Fail, "getAssertion without an allowList: "+err.Error()
		return
	}
	var got []string
	for _, a := range all {
		if a.User != nil {
			got = append(got, string(a.User.ID))
		}
	}
	c.Observed = fmt.Sprintf("registered alice, bob, carol; the key returned %d: %v", len(all), got)
	s.pr.QuirksKnown = append(s.pr.QuirksKnown, "oldestFirst")
	switch {
	case len(got) != 3 || len(all) == 0 || all[0].NumberOfCredentials != 3:
		c.Status = Fail
		c.Details = append(c.Details, "expected numberOfCredentials 3 and three users")
	case got[0] == names[2]:
		c.Status = Pass
	case got[0] == names[0]:
		c.Status = Fail
		s.pr.Quirks.OldestFirst = true
		c.Details = append(c.Details, "oldest first: Windows signs in and unlocks as the first account registered, not the last")
	default:
		c.Status = Fail
		c.Details = append(c.Details, "neither newest nor oldest first")
	}
}

func checkCredProtectRK(ctx context.Context, s *session, c *Check) {
	if !s.hasExt("credProtect") {
		c.Status, c.Observed = Info, "no credProtect"
		return
	}
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	rp := "protected." + probeRP
	_, err = s.makeResident(ctx, cn, rp, &ctap.UserEntity{ID: []byte("dave"), Name: "dave@" + rp},
		&ctap.MakeCredentialExtensions{CredProtect: ctap.Uint(ctap.CredProtectUVRequired)})
	if err != nil {
		c.Status, c.Observed = Fail, "makeCredential with credProtect 3: "+err.Error()
		return
	}
	_, err = s.assertAll(ctx, cn, rp, false)
	hidden := errors.Is(err, ctap.ErrNoCredentials)
	found, err2 := s.assertAll(ctx, cn, rp, true)
	c.Observed = fmt.Sprintf("without user verification: %s; with it: %s", map[bool]string{true: "not found", false: "found"}[hidden],
		map[bool]string{true: "found", false: "not found (" + errOrOK(err2) + ")"}[err2 == nil && len(found) == 1])
	c.Status = Fail
	if hidden && err2 == nil && len(found) == 1 {
		c.Status = Pass
	}
}

func checkCapacity(ctx context.Context, s *session, c *Check) {
	if rk, _ := s.option("rk"); !rk {
		c.Status, c.Skipped = Skip, "the key has no discoverable credentials"
		return
	}
	if !s.erased {
		c.Status, c.Skipped = Skip, "the key could not be reset first: what it holds is unknown"
		return
	}
	reported := ""
	if s.emptyRemaining >= 0 {
		reported = fmt.Sprintf("getInfo said %d right after the reset", s.emptyRemaining)
		s.pr.ResidentCapacity = s.emptyRemaining
	}
	if !s.o.Fill {
		c.Status = Info
		c.Observed = nonEmpty(reported, "the key does not report how many it can hold") + "; not filled (--fill)"
		if s.emptyRemaining >= 2 {
			c.Status = Pass
		}
		return
	}
	cn, err := s.dial(ctx)
	if err != nil {
		c.Status, c.Observed = Fail, err.Error()
		return
	}
	defer cn.close()
	rp := "fill." + probeRP
	var fillErr error
	for i := 0; s.made < s.o.MaxFill; i++ {
		name := fmt.Sprintf("user%03d@%s", i, rp)
		if _, fillErr = s.makeResident(ctx, cn, rp, &ctap.UserEntity{ID: []byte(name), Name: name}, nil); fillErr != nil {
			break
		}
		if s.o.Progress != nil && i%10 == 9 {
			s.o.Progress(fmt.Sprintf("%d discoverable credentials on the key", s.made))
		}
	}
	switch {
	case errors.Is(fillErr, ctap.ErrKeyStoreFull):
		c.Observed = fmt.Sprintf("full after %d discoverable credentials (CTAP2_ERR_KEY_STORE_FULL)", s.made)
		s.pr.ResidentCapacity = s.made
		c.Status = Pass
		if s.made < 2 {
			c.Status = Fail
			c.Details = append(c.Details, "room for one account only: a second account cannot be added")
		}
		if s.emptyRemaining >= 0 && s.emptyRemaining != s.made {
			c.Status = Warn
			c.Details = append(c.Details, fmt.Sprintf("%s: remainingDiscoverableCredentials is wrong", reported))
		}
	case fillErr != nil:
		c.Status, c.Observed = Fail, fmt.Sprintf("after %d credentials: %v (a full key answers CTAP2_ERR_KEY_STORE_FULL)", s.made, fillErr)
	default:
		c.Status, c.Observed = Pass, fmt.Sprintf("still not full after %d discoverable credentials (the probe stops there)", s.made)
	}
	if reported != "" {
		c.Details = append(c.Details, reported)
	}
}

// Reset leaves a probed key empty after something else used it (the catalog run after the checks):
// a replug, then authenticatorReset. It returns what the report's Left should say.
func Reset(ctx context.Context, k keyconn.Key, o Options) string {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	s := &session{k: k, o: o}
	took, err := s.resetAfter(ctx, 0)
	if err != nil || !took {
		return fmt.Sprintf("NOT reset after the catalog (%s): it holds what the last case left (a PIN, accounts); reset it from Settings › Manage or fidolab", errOrOK(err))
	}
	return "reset at the end: empty, no PIN"
}

// finish leaves the key as the report says: reset when a destructive check changed it.
func (s *session) finish(ctx context.Context) string {
	if !s.erased {
		if s.o.Destructive {
			return "unchanged apart from signature counters (the destructive checks could not reset it)"
		}
		return "unchanged apart from signature counters (the probe's credentials are not discoverable)"
	}
	took, err := s.resetAfter(ctx, 0)
	if err != nil || !took {
		return fmt.Sprintf("NOT reset (%s): it holds the probe's PIN %s and credentials for *.%s; reset it from Settings › Manage or fidolab",
			errOrOK(err), ProbePIN, probeRP)
	}
	return "reset at the end: empty, no PIN"
}
