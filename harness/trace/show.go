package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// ShowOptions tune Show.
type ShowOptions struct {
	// Reports lists every raw report too, not only the exchanges.
	Reports bool
}

// Show writes a readable transcript of the trace: one block per exchange (time, source,
// channel, command, status, duration, CBOR in diagnostic notation, keepalives, errors), plus
// events, marks and notes. It returns the reader's error, after writing what came before it.
func Show(w io.Writer, r *Reader, o ShowOptions) error {
	h := r.Header()
	secrets := "secrets redacted"
	if h.Secrets {
		secrets = "SECRETS KEPT: treat this file as key material"
	}
	fmt.Fprintf(w, "fidolab trace v%d · recorded %s", h.Version, h.Created.UTC().Format("2006-01-02 15:04:05 MST"))
	if h.Tool != "" {
		fmt.Fprintf(w, " by %s", h.Tool)
	}
	fmt.Fprintf(w, " · %s\n", secrets)
	if h.Comment != "" {
		fmt.Fprintf(w, "%s\n", h.Comment)
	}
	var nx, nerr int
	var rerr error
	for rec, err := range r.All() {
		if err != nil {
			rerr = err
			break
		}
		switch rec.Type {
		case TypeSource:
			fmt.Fprintf(w, "\nsource %d · %s\n", rec.Src, describeSource(rec))
		case TypeMark:
			if rec.Case != "" {
				fmt.Fprintf(w, "\n── %s: %s ──\n", rec.Case, rec.Text)
			} else {
				fmt.Fprintf(w, "\n── %s ──\n", rec.Text)
			}
		case TypeNote:
			fmt.Fprintf(w, "%s [%d] note: %s\n", stamp(rec.T), rec.Src, rec.Text)
		case TypeReport:
			if o.Reports {
				dir := "host→key"
				if rec.From == FromKey {
					dir = "key→host"
				}
				fmt.Fprintf(w, "%s [%d] %s %s", stamp(rec.T), rec.Src, dir, rec.Hex)
				if rec.Text != "" {
					fmt.Fprintf(w, "  (%s)", rec.Text)
				}
				fmt.Fprintln(w)
			}
		case TypeExchange:
			nx++
			if showExchange(w, rec) {
				nerr++
			}
		case TypeEvent:
			showEvent(w, rec)
		}
	}
	fmt.Fprintf(w, "\n%d exchanges, %d with an error status or no answer\n", nx, nerr)
	return rerr
}

func describeSource(s *Record) string {
	parts := []string{s.Side + " side"}
	for _, p := range []struct{ k, v string }{{"", s.Transport}, {"", s.Endpoint}, {"peer ", s.Peer},
		{"process ", s.Process}, {"key ", s.Device}, {"case ", s.Case}} {
		if p.v != "" {
			parts = append(parts, p.k+p.v)
		}
	}
	return strings.Join(parts, " · ")
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000000") }

// showExchange writes one exchange block and reports whether it failed.
func showExchange(w io.Writer, x *Record) bool {
	req, resp := x.Request, x.Response
	name := "(no request)"
	if req != nil {
		name = req.HID
		if req.Command != "" {
			name = req.Command
		}
	}
	status := "no answer"
	failed := true
	if resp != nil {
		status = resp.HID
		if resp.Status != "" {
			status = resp.Status
		}
		failed = resp.HID == "ERROR" || (resp.Status != "" && resp.Status != "CTAP2_OK" && !strings.HasPrefix(resp.Status, "SW_NO_ERROR"))
	}
	fmt.Fprintf(w, "\n%s [%d] #%d", stamp(x.T), x.Src, x.N)
	if x.CID != "" {
		fmt.Fprintf(w, " ch %s", x.CID)
	}
	fmt.Fprintf(w, "  %s → %s", name, status)
	if x.DurationUS > 0 {
		fmt.Fprintf(w, "  %.2f ms", float64(x.DurationUS)/1000)
	}
	fmt.Fprintln(w)
	if x.Transaction != "" || len(x.Fields) > 0 {
		keys := make([]string, 0, len(x.Fields))
		for k := range x.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		if x.Transaction != "" {
			parts = append(parts, "transaction "+x.Transaction)
		}
		for _, k := range keys {
			parts = append(parts, k+" "+x.Fields[k])
		}
		fmt.Fprintf(w, "    · %s\n", strings.Join(parts, " · "))
	}
	showMessage(w, "→", req)
	showMessage(w, "←", resp)
	if x.Keepalives > 0 {
		fmt.Fprintf(w, "    · %d keepalive(s), last %s\n", x.Keepalives, x.KeepaliveStatus)
	}
	if x.Cancelled {
		fmt.Fprintln(w, "    · cancelled by the host (CTAPHID_CANCEL)")
	}
	if x.Error != "" {
		fmt.Fprintf(w, "    ! %s\n", x.Error)
	}
	return failed
}

func showMessage(w io.Writer, arrow string, m *Message) {
	if m == nil {
		return
	}
	body := m.Diag
	if body == "" {
		body = m.Summary
	}
	if body == "" && m.Len > 0 && m.HID != "CBOR" && m.HID != "ERROR" && m.HID != "KEEPALIVE" {
		body = m.Hex.String()
	}
	if body == "" {
		body = "(no parameters)"
	}
	fmt.Fprintf(w, "    %s %s\n", arrow, body)
	if m.Diag != "" && m.Summary != "" {
		fmt.Fprintf(w, "      %s\n", m.Summary)
	}
	if m.Error != "" {
		fmt.Fprintf(w, "      ! %s\n", m.Error)
	}
}

func showEvent(w io.Writer, e *Record) {
	known := ""
	if !e.Known {
		known = " (not understood by fidolab: kept as it is)"
	}
	fmt.Fprintf(w, "\n%s [%d] event %d %s%s\n", stamp(e.T), e.Src, e.EventID, e.EventName, known)
	if e.Transaction != "" {
		fmt.Fprintf(w, "    transaction %s\n", e.Transaction)
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "    %s: %s\n", k, e.Fields[k])
	}
	if e.Error != "" {
		fmt.Fprintf(w, "    ! %s\n", e.Error)
	}
}

// Summary is the machine-readable form of a transcript (fidolab trace show --json).
type Summary struct {
	Header    Header    `json:"header"`
	Sources   []*Record `json:"sources"`
	Exchanges []*Record `json:"exchanges"`
	Events    []*Record `json:"events,omitempty"`
	Marks     []*Record `json:"marks,omitempty"`
	Notes     []*Record `json:"notes,omitempty"`
	// Error is the reader's error (a truncated or corrupted trace), "" for a complete one.
	Error string `json:"error,omitempty"`
}

// ShowJSON writes the trace as one JSON Summary. Like Show, it writes what it could read and
// returns the reader's error.
func ShowJSON(w io.Writer, r *Reader) error {
	s := Summary{Header: r.Header(), Sources: []*Record{}, Exchanges: []*Record{}}
	var rerr error
	for rec, err := range r.All() {
		if err != nil {
			rerr = err
			s.Error = err.Error()
			break
		}
		switch rec.Type {
		case TypeSource:
			s.Sources = append(s.Sources, rec)
		case TypeExchange:
			s.Exchanges = append(s.Exchanges, rec)
		case TypeEvent:
			s.Events = append(s.Events, rec)
		case TypeMark:
			s.Marks = append(s.Marks, rec)
		case TypeNote:
			s.Notes = append(s.Notes, rec)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	return rerr
}
