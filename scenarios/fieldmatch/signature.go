// Package fieldmatch recognises known field failures in a trace. Each field-report scenario of
// the catalog carries signatures (report.match); a trace — from fidolab run --trace, a served
// key, or an imported Windows event log — matches a scenario when one of its signatures holds,
// and the match says which records made it hold.
//
// A signature is clauses joined by "&&"; every clause must be met by some record of the trace:
//
//	COMMAND [PREDICATE…] -> STATUS[|STATUS…]   an exchange: the CTAP2 command, what its request
//	                                           holds, and the key's answer
//	event ID [FIELD=TEXT]                      a Windows WebAuthN event, a field containing TEXT
//
// COMMAND is makeCredential, getAssertion, clientPin, reset or getInfo. PREDICATEs:
// pinUvAuthParam=empty (present and zero-length), pinUvAuthParam=none (absent), up=false,
// hmac-secret (the extension is requested), user>64 (user name or display name over 64 bytes),
// sig=bad (the assertion's signature does not verify with the public key a makeCredential of the
// same trace returned; an answer with redacted bytes, such as the hmac-secret output of a trace
// recorded without --trace-secrets, cannot be checked and never meets it). STATUS is a CTAP status name (CTAP2_ERR_PIN_INVALID or PIN_INVALID),
// ok, error (any status but OK) or * (any answer).
package fieldmatch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/ctap"
)

// Signature is one parsed signature.
type Signature struct {
	Text    string
	Clauses []Clause
}

// Clause is one condition on a trace's records.
type Clause struct {
	Text string
	// exchange clauses
	Command  string   // authenticatorMakeCredential, …; "" for an event clause
	Preds    []string // as written
	Statuses []string // "ok", "error", "*" or status names (canonical)
	// event clauses
	EventID    int
	Field, Has string
}

var commands = map[string]string{
	"makeCredential": "authenticatorMakeCredential",
	"getAssertion":   "authenticatorGetAssertion",
	"clientPin":      "authenticatorClientPIN",
	"reset":          "authenticatorReset",
	"getInfo":        "authenticatorGetInfo",
}

var predicates = []string{"pinUvAuthParam=empty", "pinUvAuthParam=none", "up=false", "hmac-secret", "user>64", "sig=bad"}

// maxSignature bounds a signature's text: they are written by hand in catalog files.
const maxSignature = 1024

// Parse reads a signature.
func Parse(text string) (Signature, error) {
	if len(text) > maxSignature {
		return Signature{}, fmt.Errorf("signature of %d bytes: at most %d", len(text), maxSignature)
	}
	s := Signature{Text: strings.TrimSpace(text)}
	for _, part := range strings.Split(text, "&&") {
		c, err := parseClause(strings.TrimSpace(part))
		if err != nil {
			return Signature{}, fmt.Errorf("signature %q: %w", s.Text, err)
		}
		s.Clauses = append(s.Clauses, c)
	}
	return s, nil
}

func parseClause(t string) (Clause, error) {
	c := Clause{Text: t}
	f := strings.Fields(t)
	if len(f) == 0 {
		return c, fmt.Errorf("empty clause")
	}
	if f[0] == "event" {
		if len(f) < 2 || len(f) > 3 {
			return c, fmt.Errorf("clause %q: want event ID [FIELD=TEXT]", t)
		}
		id, err := strconv.Atoi(f[1])
		if err != nil || id <= 0 || id > 65535 {
			return c, fmt.Errorf("clause %q: event ID %q is not a number 1..65535", t, f[1])
		}
		c.EventID = id
		if len(f) == 3 {
			k, v, ok := strings.Cut(f[2], "=")
			if !ok || k == "" || v == "" {
				return c, fmt.Errorf("clause %q: want FIELD=TEXT, not %q", t, f[2])
			}
			c.Field, c.Has = k, v
		}
		return c, nil
	}
	cmd, ok := commands[f[0]]
	if !ok {
		return c, fmt.Errorf("clause %q: unknown command %q (known: event, %s)", t, f[0], strings.Join(sortedKeys(commands), ", "))
	}
	c.Command = cmd
	arrow := slices.Index(f, "->")
	if arrow < 0 || arrow != len(f)-2 {
		return c, fmt.Errorf("clause %q: want COMMAND [PREDICATE…] -> STATUS", t)
	}
	for _, p := range f[1:arrow] {
		if !slices.Contains(predicates, p) {
			return c, fmt.Errorf("clause %q: unknown predicate %q (known: %s)", t, p, strings.Join(predicates, ", "))
		}
		c.Preds = append(c.Preds, p)
	}
	for _, st := range strings.Split(f[len(f)-1], "|") {
		switch st {
		case "ok", "error", "*":
			c.Statuses = append(c.Statuses, st)
		default:
			s, err := ctap.ParseStatus(st)
			if err != nil && !strings.Contains(strings.ToUpper(st), "ERR_") {
				s, err = ctap.ParseStatus("ERR_" + st) // PIN_INVALID for CTAP2_ERR_PIN_INVALID
			}
			if err != nil {
				return c, fmt.Errorf("clause %q: %v", t, err)
			}
			c.Statuses = append(c.Statuses, s.String())
		}
	}
	return c, nil
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}
