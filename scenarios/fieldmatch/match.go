package fieldmatch

import (
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/harness/trace"
)

// Known is a known field failure: a scenario and its signatures.
type Known struct {
	ID         string
	Title      string
	Source     string
	Signatures []Signature
}

// Hit is a known failure a trace resembles: the signature that held and, per clause, the record
// that met it.
type Hit struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Source    string   `json:"source"`
	Signature string   `json:"signature"`
	Why       []string `json:"why"`
}

// Limits on what a trace may make the matcher hold: beyond them the rest is not read.
const (
	maxRecords = 1 << 20
	maxKeys    = 4096
)

// fact is what the matcher knows of one record.
type fact struct {
	where   string // "exchange 3 (src 1)", "event 1002"
	command string
	preds   map[string]bool
	status  string // canonical status name; "" when the key never answered
	errText string
	eventID int
	fields  map[string]string
}

// Read reads a trace and returns its facts for Match.
func Read(r io.Reader) (*Facts, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	f := &Facts{keys: map[string]cose.Key{}}
	n := 0
	for rec, err := range tr.All() {
		if err != nil {
			return nil, err
		}
		if n++; n > maxRecords {
			return nil, fmt.Errorf("fieldmatch: more than %d records", maxRecords)
		}
		switch rec.Type {
		case trace.TypeExchange:
			f.exchange(rec)
		case trace.TypeEvent:
			f.facts = append(f.facts, fact{where: fmt.Sprintf("event %d (line %d)", rec.EventID, tr.Line()), eventID: rec.EventID, fields: rec.Fields})
		}
	}
	return f, nil
}

// Facts are a trace's records as the matcher reads them.
type Facts struct {
	facts []fact
	keys  map[string]cose.Key // credential ID (hex) → public key, from makeCredential answers
}

func (f *Facts) exchange(rec *trace.Record) {
	if rec.Request == nil || rec.Request.Command == "" {
		return
	}
	x := fact{where: fmt.Sprintf("exchange %d of source %d (%s)", rec.N, rec.Src, rec.Request.Command),
		command: rec.Request.Command, preds: map[string]bool{}, errText: rec.Error, fields: rec.Fields}
	body := cborBody(rec.Request)
	var respBody []byte
	respRedacted := false
	if m := rec.Response; m != nil && m.Code != nil {
		x.status = ctap.Status(*m.Code).String()
		p, red := m.Payload()
		if len(p) > 0 && p[0] == byte(*m.Code) {
			respBody, respRedacted = p[1:], red
		}
	}
	switch x.command {
	case "authenticatorMakeCredential":
		if req, err := ctap.DecodeMakeCredential(body); err == nil {
			x.preds["pinUvAuthParam=empty"] = req.PinUvAuthParam != nil && len(req.PinUvAuthParam) == 0
			x.preds["pinUvAuthParam=none"] = req.PinUvAuthParam == nil
			x.preds["user>64"] = req.User != nil && (len(req.User.Name) > 64 || len(req.User.DisplayName) > 64)
		}
		if x.status == ctap.StatusOK.String() && len(f.keys) < maxKeys {
			var resp ctap.MakeCredentialResponse
			if ctap.Unmarshal(respBody, &resp) == nil {
				if ad, err := ctap.ParseAuthData(resp.AuthData); err == nil && ad.Attested != nil {
					if k, err := cose.Unmarshal(ad.Attested.PublicKey); err == nil {
						f.keys[hex.EncodeToString(ad.Attested.CredentialID)] = k
					}
				}
			}
		}
	case "authenticatorGetAssertion":
		req, err := ctap.DecodeGetAssertion(body)
		if err != nil {
			break
		}
		x.preds["pinUvAuthParam=empty"] = req.PinUvAuthParam != nil && len(req.PinUvAuthParam) == 0
		x.preds["pinUvAuthParam=none"] = req.PinUvAuthParam == nil
		x.preds["up=false"] = req.Options != nil && req.Options.UP != nil && !*req.Options.UP
		x.preds["hmac-secret"] = req.Extensions != nil && req.Extensions.HMACSecret != nil
		// A redacted answer (the hmac-secret output in authData, without --trace-secrets) cannot
		// be verified: the predicate then does not hold.
		if x.status == ctap.StatusOK.String() && !respRedacted {
			x.preds["sig=bad"] = f.badSignature(req, respBody)
		}
	}
	f.facts = append(f.facts, x)
}

// badSignature reports whether an assertion's signature fails to verify with the key a
// makeCredential of the trace returned for its credential (false when no such key is known).
func (f *Facts) badSignature(req *ctap.GetAssertionRequest, body []byte) bool {
	var resp ctap.GetAssertionResponse
	if ctap.Unmarshal(body, &resp) != nil || len(resp.AuthData) == 0 {
		return false
	}
	id := []byte(nil)
	switch {
	case resp.Credential != nil:
		id = resp.Credential.ID
	case len(req.AllowList) == 1:
		id = req.AllowList[0].ID
	}
	k, ok := f.keys[hex.EncodeToString(id)]
	if !ok {
		return false
	}
	msg := append(append([]byte{}, resp.AuthData...), req.ClientDataHash...)
	return k.Verify(msg, resp.Signature) != nil
}

// cborBody is a CBOR request's parameters: the payload after the command byte.
func cborBody(m *trace.Message) []byte {
	p, _ := m.Payload()
	if len(p) == 0 {
		return nil
	}
	return p[1:]
}

// Match returns the known failures the facts resemble, in the order of known.
func (f *Facts) Match(known []Known) []Hit {
	var hits []Hit
	for _, k := range known {
		for _, s := range k.Signatures {
			if why, ok := f.holds(s); ok {
				hits = append(hits, Hit{ID: k.ID, Title: k.Title, Source: k.Source, Signature: s.Text, Why: why})
				break
			}
		}
	}
	return hits
}

func (f *Facts) holds(s Signature) ([]string, bool) {
	var why []string
	for _, c := range s.Clauses {
		i := slices.IndexFunc(f.facts, func(x fact) bool { return c.met(x) })
		if i < 0 {
			return nil, false
		}
		why = append(why, fmt.Sprintf("%s: %s", c.Text, f.facts[i].describe()))
	}
	return why, true
}

func (c Clause) met(x fact) bool {
	if c.Command == "" {
		if x.eventID != c.EventID && !slices.Contains(strings.Split(x.fields["events"], "+"), strconv.Itoa(c.EventID)) {
			return false // an imported exchange names the events it was made of
		}
		if c.Field == "" {
			return true
		}
		for k, v := range x.fields {
			if strings.EqualFold(k, c.Field) && strings.Contains(strings.ToUpper(v), strings.ToUpper(c.Has)) {
				return true
			}
		}
		return false
	}
	if x.command != c.Command {
		return false
	}
	for _, p := range c.Preds {
		if !x.preds[p] {
			return false
		}
	}
	return slices.ContainsFunc(c.Statuses, func(st string) bool {
		switch st {
		case "*":
			return true
		case "ok":
			return x.status == ctap.StatusOK.String()
		case "error":
			return (x.status != "" && x.status != ctap.StatusOK.String()) || x.errText != ""
		}
		return x.status == st
	})
}

func (x fact) describe() string {
	if x.command == "" {
		return x.where
	}
	if x.status == "" {
		st := " got no answer"
		if x.errText != "" {
			st += " (" + x.errText + ")"
		}
		return x.where + st
	}
	return x.where + " answered " + x.status
}
