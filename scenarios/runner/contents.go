package runner

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/entra"
)

// Contents is what an authenticatorReset would erase from a key, as far as a host can tell without
// changing anything: a key with a PIN guards its credential list behind that PIN.
type Contents struct {
	// PINSet is getInfo's clientPin option: a PIN someone chose.
	PINSet bool
	// PINRetries is what clientPIN getPINRetries answered, -1 when not asked or not answered.
	PINRetries int
	// Fingerprints is getInfo's bioEnroll option: fingerprints are enrolled.
	Fingerprints bool
	// Resident counts discoverable credentials by relying party, as far as they could be counted.
	Resident map[string]int
	// ResidentExact is true when Resident is the key's whole list (credential management with the
	// PIN); otherwise it holds what a silent lookup of known sites found.
	ResidentExact bool
	// LargeBlobBytes is the size of stored large-blob data (0: none, -1: not read).
	LargeBlobBytes int
	// Notes say what could not be checked, and why.
	Notes []string
}

// Empty reports whether nothing a user owns was found: no PIN, no fingerprint, no counted
// credential, no large-blob data.
func (c *Contents) Empty() bool {
	return !c.PINSet && !c.Fingerprints && c.residentTotal() == 0 && c.LargeBlobBytes <= 0
}

func (c *Contents) residentTotal() int {
	n := 0
	for _, v := range c.Resident {
		n += v
	}
	return n
}

// Lines lists what would be erased, one item per line, for the refusal message and the prompt.
func (c *Contents) Lines() []string {
	var out []string
	if c.PINSet {
		s := "a PIN is set"
		if c.PINRetries >= 0 {
			s += fmt.Sprintf(" (%d retries left)", c.PINRetries)
		}
		out = append(out, s)
	}
	if c.Fingerprints {
		out = append(out, "fingerprints are enrolled")
	}
	if n := c.residentTotal(); n > 0 {
		var rps []string
		for rp, k := range c.Resident {
			rps = append(rps, fmt.Sprintf("%s (%d)", rp, k))
		}
		sort.Strings(rps)
		qual := ""
		if !c.ResidentExact {
			qual = "at least "
		}
		out = append(out, fmt.Sprintf("%s%d discoverable credential(s): %s", qual, n, strings.Join(rps, ", ")))
	}
	if c.PINSet && !c.ResidentExact {
		out = append(out, "discoverable credentials of other sites cannot be listed without the PIN "+
			"(set FIDOLAB_KEY_PIN to the key's PIN to list them)")
	}
	if c.LargeBlobBytes > 0 {
		out = append(out, fmt.Sprintf("%d bytes of large-blob data", c.LargeBlobBytes))
	}
	return append(out, c.Notes...)
}

// probeRPs are the sites whose discoverable credentials a silent lookup counts without a PIN: the
// one every case of the catalog registers with, so a key left over from an earlier run is known.
var probeRPs = []string{entra.RPID}

// emptyLargeBlobArray is the serialized empty large-blob array without its hash: CBOR [].
const emptyLargeBlobArray = 1

// Inspect reads what is on the key through c without writing to it (a silent lookup moves a key's
// signature counter, nothing else). pin, when not empty, is the key's PIN: with it, credential
// management lists every site. A wrong PIN is tried once and reported, never retried.
func Inspect(ctx context.Context, c *client.Client, pin string) (*Contents, error) {
	info, err := c.GetInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("getInfo: %w", err)
	}
	out := &Contents{PINRetries: -1, Resident: map[string]int{}}
	if !info.HasVersion("FIDO_2_0") && !info.HasVersion("FIDO_2_1") && !info.HasVersion("FIDO_2_1_PRE") {
		out.Notes = append(out.Notes, "a U2F-only key keeps no credentials a host could count")
		return out, nil
	}
	out.PINSet, _ = info.Option("clientPin")
	out.Fingerprints, _ = info.Option("bioEnroll")
	if out.PINSet {
		if r, _, err := c.PINRetries(ctx); err == nil {
			out.PINRetries = r
		}
	}
	if out.PINSet && pin != "" && hasCredMgmt(info) {
		if err := listWithPIN(ctx, c, pin, out); err != nil {
			out.Notes = append(out.Notes, "listing credentials with the PIN given: "+err.Error())
		}
	}
	if !out.ResidentExact {
		if rk, _ := info.Option("rk"); rk {
			for _, rp := range probeRPs {
				n, err := silentCount(ctx, c, rp)
				if err != nil {
					out.Notes = append(out.Notes, fmt.Sprintf("counting credentials of %s: %v", rp, err))
					continue
				}
				if n > 0 {
					out.Resident[rp] = n
				}
			}
		}
	}
	if lb, _ := info.Option("largeBlobs"); lb {
		arr, err := c.LargeBlobs().Read(ctx)
		switch {
		case err != nil:
			out.LargeBlobBytes = -1
			out.Notes = append(out.Notes, "reading large blobs: "+err.Error())
		case len(arr) > emptyLargeBlobArray:
			out.LargeBlobBytes = len(arr)
		}
	}
	return out, nil
}

func hasCredMgmt(info *ctap.GetInfoResponse) bool {
	a, _ := info.Option("credMgmt")
	b, _ := info.Option("credentialMgmtPreview")
	return a || b
}

// listWithPIN counts every discoverable credential through credential management.
func listWithPIN(ctx context.Context, c *client.Client, pin string, out *Contents) error {
	tok, err := c.GetPINToken(ctx, pin, ctap.PermCredentialManagement, "")
	if err != nil {
		if errors.Is(err, ctap.ErrPINInvalid) {
			if r, _, rerr := c.PINRetries(ctx); rerr == nil {
				out.PINRetries = r
			}
			return errors.New("the key refused it (wrong PIN; not retried)")
		}
		return err
	}
	cm := c.CredMgmt(tok)
	rps, err := cm.RPs(ctx)
	if err != nil {
		return err
	}
	for _, rp := range rps {
		creds, err := cm.Credentials(ctx, rp.RPIDHash)
		if err != nil {
			return err
		}
		name := rp.RP.ID
		if name == "" {
			name = fmt.Sprintf("rpIdHash %x…", rp.RPIDHash[:4])
		}
		out.Resident[name] += len(creds)
	}
	out.ResidentExact = true
	return nil
}

// silentCount asks for a discoverable assertion of rpID without user presence (up=false) and
// returns how many credentials the key holds for it: nobody touches the key, nothing is stored.
// Credentials that need user verification to be found (credProtect 2 and 3) stay hidden.
func silentCount(ctx context.Context, c *client.Client, rpID string) (int, error) {
	cdh := make([]byte, 32)
	if _, err := rand.Read(cdh); err != nil {
		return 0, err
	}
	req := &ctap.GetAssertionRequest{RPID: rpID, ClientDataHash: cdh, Options: &ctap.Options{UP: ctap.Bool(false)}}
	a, err := c.GetAssertion(ctx, req)
	switch {
	case errors.Is(err, ctap.ErrNoCredentials):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return max(a.NumberOfCredentials, 1), nil
}
