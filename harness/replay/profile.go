package replay

import (
	"crypto/x509"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/keyprofile"
)

// Profile reads what the trace shows of the recorded key: its getInfo, its INIT answer, its USB
// identity (an event log's device events), its attestation, and the quirks its traffic reveals —
// no keepalives during a long request, a slow answer to every request, discoverable credentials
// returned oldest first.
func (p *Plan) Profile(source string) *keyprofile.Profile {
	pr := &keyprofile.Profile{Source: source}
	var infoStep *Step
	pr.Info, infoStep = p.GetInfo()
	if info := pr.Info; info != nil && info.RemainingDiscoverableCredentials != nil && info.Options["rk"] {
		// The key held the discoverable credentials it answered with before the trace made any.
		held := 0
		for _, g := range p.Groups {
			if len(g.Steps) > 0 && infoStep != nil && g.Steps[0].Index <= infoStep.Index && infoStep.Index <= g.Steps[len(g.Steps)-1].Index {
				for _, c := range g.Preconditions().Credentials {
					if c.User != nil {
						held++
					}
				}
			}
		}
		pr.ResidentCapacity = int(*info.RemainingDiscoverableCredentials) + held
		pr.ResidentCapacityWhy = fmt.Sprintf("getInfo's remainingDiscoverableCredentials (%d) and the %d discoverable credential(s) the trace shows the key held; others it held are not counted",
			*info.RemainingDiscoverableCredentials, held)
	}
	var minQuick time.Duration = -1
	var maxSilent time.Duration // the longest silence of the key on a request it never answered
	keepaliveKnown := false
	order := map[string][]string{} // rp → user handles in the order the trace made them
	for _, g := range p.Groups {
		for _, st := range g.Steps {
			if st.Response == nil {
				// A key that never answered was silent at least this long: without keepalives
				// in that time it sends none, and its work takes longer than the silence.
				if st.Cmd != 0 && !st.Unframed && st.Silent >= 200*time.Millisecond {
					keepaliveKnown = true
					if st.Keepalives == 0 {
						pr.Quirks.NoKeepalive = true
					}
					maxSilent = max(maxSilent, st.Silent)
				}
				continue
			}
			rec, _ := st.Response.Payload()
			switch {
			case st.HID == ctaphid.CmdInit && len(rec) >= 17 && pr.Device == nil:
				pr.Device = &keyprofile.DeviceInfo{Major: rec[13], Minor: rec[14], Build: rec[15], Capabilities: rec[16]}
			case st.HID == ctaphid.CmdMsg && !strings.HasPrefix(st.Response.Status, "SW_INS_NOT_SUPPORTED"):
				pr.U2F = true
			}
			if st.Cmd == 0 {
				continue
			}
			d := stepDuration(st)
			if d > 0 && (st.Cmd == ctap.CmdGetInfo || subCommandName(st.Cmd, st.Request) == "getKeyAgreement" ||
				subCommandName(st.Cmd, st.Request) == "getPINRetries") && (minQuick < 0 || d < minQuick) {
				minQuick = d
			}
			if d >= 200*time.Millisecond && !st.Unframed {
				keepaliveKnown = true
				if st.Keepalives == 0 {
					pr.Quirks.NoKeepalive = true
				}
			}
			body, ok := okBodyOf(st)
			if !ok {
				continue
			}
			switch st.Cmd {
			case ctap.CmdMakeCredential:
				attestationOf(pr, st, body, order)
			case ctap.CmdGetAssertion:
				orderOf(pr, st, body, order)
			}
		}
	}
	if keepaliveKnown {
		pr.QuirksKnown = append(pr.QuirksKnown, "noKeepalive")
	}
	if minQuick >= 50*time.Millisecond {
		pr.Quirks.ProcessingDelayMs = int(minQuick / time.Millisecond)
		pr.QuirksKnown = append(pr.QuirksKnown, "processingDelayMs")
	} else if minQuick >= 0 {
		pr.QuirksKnown = append(pr.QuirksKnown, "processingDelayMs")
	} else if maxSilent > 0 {
		// No request was answered, so no answer bounds the work time: the silence is its lower
		// bound, and the shortest work time that reproduces what the host saw.
		pr.Quirks.ProcessingDelayMs = int(maxSilent / time.Millisecond)
		pr.QuirksKnown = append(pr.QuirksKnown, "processingDelayMs")
	}
	for _, ev := range p.Events {
		if path := ev.Fields["DevicePath"]; path != "" && pr.HID == nil {
			pr.HID = hidFromPath(path, ev.Fields["Manufacturer"], ev.Fields["Product"])
		}
	}
	if pr.HID != nil && pr.Info != nil && pr.Name == "" {
		pr.Name = slug(pr.HID.Product)
	}
	if pr.Name == "" && pr.Info != nil {
		pr.Name = "key-" + keyprofile.AAGUIDString(pr.Info.AAGUID)[:8]
	}
	return pr
}

func stepDuration(st *Step) time.Duration {
	if st.Response == nil || st.Response.T.IsZero() || !st.Response.T.After(st.T) {
		return 0
	}
	return st.Response.T.Sub(st.T)
}

// attestationOf reads the attestation format and certificate subject of a makeCredential answer,
// and remembers the discoverable credentials' creation order.
func attestationOf(pr *keyprofile.Profile, st *Step, body []byte, order map[string][]string) {
	m, err := decodeMap(body)
	if err != nil {
		return
	}
	req := mustMap(st.Request)
	if getMap(req, 7) != nil {
		if rk, _ := get(getMap(req, 7), "rk"); rk == true {
			rp := getString(getMap(req, 2), "id")
			order[rp] = append(order[rp], string(getBytes(getMap(req, 3), "id")))
		}
	}
	if pr.Attestation != "" {
		return
	}
	stmt := getMap(m, 3)
	switch getString(m, 1) {
	case ctap.FormatNone:
		pr.Attestation = persona.AttestationNone
	case ctap.FormatPacked:
		x5c, _ := get(stmt, "x5c")
		certs, _ := x5c.([]any)
		if len(certs) == 0 {
			pr.Attestation = persona.AttestationSelf
			return
		}
		pr.Attestation = persona.AttestationBatch
		if der, ok := certs[0].([]byte); ok {
			if c, err := x509.ParseCertificate(der); err == nil {
				s := persona.Subject{CommonName: c.Subject.CommonName}
				if len(c.Subject.Country) > 0 {
					s.Country = c.Subject.Country[0]
				}
				if len(c.Subject.Organization) > 0 {
					s.Organization = c.Subject.Organization[0]
				}
				if len(c.Subject.OrganizationalUnit) > 0 {
					s.OrganizationalUnit = c.Subject.OrganizationalUnit[0]
				}
				pr.Subject = &s
			}
		}
	}
}

// orderOf tells whether the key returns discoverable credentials newest or oldest first, from a
// getAssertion answer with several credentials all made during the trace.
func orderOf(pr *keyprofile.Profile, st *Step, body []byte, order map[string][]string) {
	req := mustMap(st.Request)
	if _, ok := get(req, 3); ok {
		return
	}
	m, err := decodeMap(body)
	if err != nil {
		return
	}
	n, _ := getUint(m, 5)
	made := order[getString(req, 1)]
	if n < 2 || len(made) < 2 {
		return
	}
	first := string(getBytes(getMap(m, 4), "id"))
	for _, q := range pr.QuirksKnown {
		if q == "oldestFirst" {
			return
		}
	}
	switch first {
	case made[len(made)-1]:
		pr.QuirksKnown = append(pr.QuirksKnown, "oldestFirst")
	case made[0]:
		pr.Quirks.OldestFirst = true
		pr.QuirksKnown = append(pr.QuirksKnown, "oldestFirst")
	}
}

var vidPID = regexp.MustCompile(`(?i)VID_([0-9A-F]{4})&PID_([0-9A-F]{4})`)

// hidFromPath reads the vendor and product IDs out of a Windows device path.
func hidFromPath(path, manufacturer, product string) *persona.HID {
	m := vidPID.FindStringSubmatch(path)
	if m == nil {
		return nil
	}
	v, _ := strconv.ParseUint(m[1], 16, 16)
	pid, _ := strconv.ParseUint(m[2], 16, 16)
	return &persona.HID{VendorID: uint16(v), ProductID: uint16(pid), Manufacturer: manufacturer, Product: product}
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		return fmt.Sprintf("key-%d", len(s))
	}
	return out
}
