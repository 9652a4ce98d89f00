package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
)

// Precondition is what the recorded key held when the trace began, as far as its answers tell:
// a PIN, and credentials it signed with that no step of the trace made.
type Precondition struct {
	// PIN is true when the key had a PIN (its first getInfo says clientPin, or a PIN token was
	// issued before any setPIN).
	PIN bool
	// Fingerprints is true when getInfo said uv: enrolled fingerprints, which no set-up makes.
	Fingerprints bool
	// Credentials are the credentials the key used without the trace making them, in the order it
	// first answered with them.
	Credentials []PriorCredential
}

// PriorCredential is one credential the recorded key had before the trace began.
type PriorCredential struct {
	RPID string
	// ID is the recorded key's credential ID.
	ID []byte
	// User is the user entity the key returned (a discoverable credential), nil when it returned
	// none (a credential found through the allowList).
	User *ctap.UserEntity
	// HMACSecret is set when the host used hmac-secret with it.
	HMACSecret bool
}

// Preconditions reads a group's start state from its traffic.
func (g *Group) Preconditions() Precondition {
	var pc Precondition
	if info, _ := g.GetInfo(); info != nil {
		pc.PIN = info.Options["clientPin"]
		pc.Fingerprints = info.Options["uv"]
	}
	made := map[string]bool{}
	seen := map[string]bool{}
	setPIN := false
	lastRP, lastHMAC := "", false
	for _, st := range g.Steps {
		body, ok := okBodyOf(st)
		switch st.Cmd {
		case ctap.CmdClientPIN:
			sub := subCommandName(st.Cmd, st.Request)
			if sub == "setPIN" {
				setPIN = true
			}
			if ok && !setPIN && strings.HasPrefix(sub, "getPin") && !strings.Contains(sub, "UsingUv") {
				pc.PIN = true
			}
		case ctap.CmdMakeCredential:
			if m, err := decodeMap(body); ok && err == nil {
				if ad, err := ctap.ParseAuthData(getBytes(m, 2)); err == nil && ad.Attested != nil {
					made[hex.EncodeToString(ad.Attested.CredentialID)] = true
				}
			}
		case ctap.CmdGetAssertion, ctap.CmdGetNextAssertion:
			if st.Cmd == ctap.CmdGetAssertion {
				req := mustMap(st.Request)
				lastRP = getString(req, 1)
				lastHMAC = getMap(getMap(req, 4), "hmac-secret") != nil
			}
			if !ok {
				continue
			}
			m, err := decodeMap(body)
			if err != nil {
				continue
			}
			id := getBytes(getMap(m, 1), "id")
			if id == nil && st.Cmd == ctap.CmdGetAssertion {
				if list, _ := get(mustMap(st.Request), 3); list != nil {
					if l, _ := list.([]any); len(l) == 1 {
						d, _ := l[0].(map[any]any)
						id = getBytes(d, "id")
					}
				}
			}
			h := hex.EncodeToString(id)
			if id == nil || made[h] || seen[h] || lastRP == "" {
				continue
			}
			seen[h] = true
			pcr := PriorCredential{RPID: lastRP, ID: id, HMACSecret: lastHMAC}
			if u := getMap(m, 4); u != nil {
				pcr.User = &ctap.UserEntity{ID: getBytes(u, "id"), Name: getString(u, "name"), DisplayName: getString(u, "displayName")}
			}
			pc.Credentials = append(pc.Credentials, pcr)
		}
	}
	return pc
}

func okBodyOf(st *Step) ([]byte, bool) {
	if st.Response == nil {
		return nil, false
	}
	return okBody(st.Response)
}

// setUp brings a fresh key to the group's preconditions: it makes the prior credentials (each
// relying party's in reverse, so that a key answering newest first returns them in the recorded
// order), then sets the PIN. The new credentials stand in for the recorded ones: their IDs are
// mapped and their public keys known, so later assertions are verified.
func (s *session) setUp(ctx context.Context, c *client.Client, pc Precondition, pin string) ([]string, error) {
	var lines []string
	byRP := map[string][]PriorCredential{}
	var rps []string
	for _, cr := range pc.Credentials {
		if byRP[cr.RPID] == nil {
			rps = append(rps, cr.RPID)
		}
		byRP[cr.RPID] = append(byRP[cr.RPID], cr)
	}
	// A key without a PIN gets its credentials first and its PIN last, as a fresh one does; a key
	// that has one needs it (--pin) for a token per credential.
	info, err := c.GetInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("set-up: getInfo: %w", err)
	}
	if has, _ := info.Option("clientPin"); !has {
		s.pin = ""
	} else if s.pin == "" && len(pc.Credentials) > 0 {
		return nil, errors.New("set-up: the key has a PIN: give it with --pin to make the recorded key's credentials")
	}
	var tok *client.Token
	for _, rp := range rps {
		list := byRP[rp]
		var names []string
		for i := len(list) - 1; i >= 0; i-- {
			cr := list[i]
			if s.pin != "" {
				var err error
				if tok, err = c.GetPINToken(ctx, s.pin, ctap.PermMakeCredential, rp); err != nil {
					return lines, fmt.Errorf("set-up: PIN token to make %s's credential: %w", rp, err)
				}
			}
			cdh := make([]byte, 32)
			_, _ = rand.Read(cdh)
			user := cr.User
			rk := user != nil
			if user == nil {
				id := make([]byte, 16)
				_, _ = rand.Read(id)
				user = &ctap.UserEntity{ID: id, Name: "replay"}
			}
			alg := int64(-7)
			req := &ctap.MakeCredentialRequest{ClientDataHash: cdh, RP: &ctap.RPEntity{ID: rp}, User: user,
				PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
				Options:          &ctap.Options{RK: ctap.Bool(rk)}}
			if cr.HMACSecret {
				req.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}
			}
			if tok != nil {
				req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(cdh), tok.ProtocolParam()
			}
			res, err := c.MakeCredential(ctx, req)
			if err != nil {
				return lines, fmt.Errorf("set-up: making %s's credential: %w", rp, err)
			}
			s.mapCred(cr.ID, res.CredentialID)
			s.pub[hex.EncodeToString(res.CredentialID)] = res.PublicKey
			if cr.User != nil {
				s.users[hex.EncodeToString(cr.User.ID)] = res.CredentialID
				names = append([]string{userName(cr.User)}, names...)
			} else {
				names = append([]string{"a credential found through the allowList"}, names...)
			}
		}
		lines = append(lines, fmt.Sprintf("made %d credential(s) for %s the recorded key had: %s", len(list), rp, strings.Join(names, ", ")))
	}
	if pc.PIN && s.pin == "" {
		if err := c.SetPIN(ctx, pin); err != nil {
			return lines, fmt.Errorf("set-up: setting the PIN: %w", err)
		}
		s.pin = pin
		lines = append(lines, "PIN set (the recorded key had one)")
	}
	if pc.Fingerprints {
		lines = append(lines, "not reproduced: the recorded key had fingerprints enrolled (getInfo uv true)")
	}
	return lines, nil
}

func userName(u *ctap.UserEntity) string {
	switch {
	case u.Name != "":
		return u.Name
	case u.DisplayName != "":
		return u.DisplayName
	}
	return "user " + short(u.ID)
}
