package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/fidolab/fidolab/scenarios/result"
)

// JSONSchemaVersion is the version of the JSON report's format, described in docs/report-json.md
// and docs/report-json.schema.json. It goes up only when a field is removed or changes meaning;
// fields may be added within a version, so readers ignore fields they do not know.
const JSONSchemaVersion = 1

// The JSON report. Durations are milliseconds (numbers with up to three decimals, so microseconds
// survive); times are RFC 3339 in UTC; the verdict and totals are at the top, so a CI step reads
// one field instead of counting cases.
type jsonReport struct {
	SchemaVersion int        `json:"schemaVersion"`
	Generator     string     `json:"generator"`
	Verdict       string     `json:"verdict"`
	Totals        jsonTotals `json:"totals"`
	Started       string     `json:"started,omitempty"`
	DurationMs    float64    `json:"durationMs"`
	Target        string     `json:"target"`
	Key           string     `json:"key"`
	Persona       string     `json:"persona,omitempty"`
	Versions      []string   `json:"versions"`
	LeftOut       []string   `json:"leftOut,omitempty"`
	Cases         []jsonCase `json:"cases"`
}

type jsonTotals struct {
	Cases           int `json:"cases"`
	Passed          int `json:"passed"`
	Failed          int `json:"failed"`
	KeyIncompatible int `json:"keyIncompatible"`
	Errors          int `json:"errors"`
	// Worked and Refused split Passed (added within version 1).
	Worked  int `json:"worked"`
	Refused int `json:"refused"`
}

type jsonCase struct {
	ID         string     `json:"id"`
	Title      string     `json:"title"`
	Version    string     `json:"version"`
	Supported  bool       `json:"supported"`
	DocWords   string     `json:"docWords"`
	DocSection string     `json:"docSection,omitempty"`
	Tags       []string   `json:"tags,omitempty"`
	File       string     `json:"file,omitempty"`
	Verdict    string     `json:"verdict"`
	Refused    bool       `json:"refused,omitempty"` // the document's outcome is a refusal (added within version 1)
	KeyCause   string     `json:"keyCause,omitempty"`
	Error      string     `json:"error,omitempty"`
	DurationMs float64    `json:"durationMs"`
	Steps      []jsonStep `json:"steps"`
}

type jsonStep struct {
	Action     string         `json:"action"`
	Detail     string         `json:"detail,omitempty"`
	Expected   result.Outcome `json:"expected"`
	Observed   result.Outcome `json:"observed"`
	Verdict    string         `json:"verdict"`
	Notes      []string       `json:"notes,omitempty"`
	DurationMs float64        `json:"durationMs"`
	Exchanges  []jsonExchange `json:"exchanges,omitempty"`
}

type jsonExchange struct {
	Command    string  `json:"command"`
	Request    string  `json:"request"`
	Response   string  `json:"response"`
	Status     string  `json:"status"`
	DurationMs float64 `json:"durationMs"`
}

// Verdicts of a whole run in the JSON report.
const (
	RunPass  = "pass"  // every case passed
	RunFail  = "fail"  // at least one case failed, was key-incompatible, or could not run
	RunEmpty = "empty" // no case ran
)

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func fromMs(v float64) time.Duration { return time.Duration(math.Round(v * 1e6)) }

// JSON writes the run as the JSON report (docs/report-json.md); ReadJSON reads it back.
func JSON(w io.Writer, r *result.Run) error {
	if r == nil {
		return fmt.Errorf("report: no run")
	}
	r = withoutNil(r)
	s := r.Summary()
	out := jsonReport{
		SchemaVersion: JSONSchemaVersion,
		Generator:     "fidolab",
		Verdict:       RunFail,
		Totals: jsonTotals{Cases: s.Total, Passed: s.Passed, Failed: s.Failed, KeyIncompatible: s.KeyIncompatible, Errors: s.Errors,
			Worked: s.Worked, Refused: s.Refused},
		DurationMs: ms(r.Duration),
		Target:     r.Target,
		Key:        r.Key,
		Persona:    r.Persona,
		Versions:   nonNil(r.Versions),
		LeftOut:    r.LeftOut,
		Cases:      []jsonCase{},
	}
	switch {
	case s.Total == 0:
		out.Verdict = RunEmpty
	case r.OK():
		out.Verdict = RunPass
	}
	if !r.Started.IsZero() {
		out.Started = r.Started.UTC().Format(time.RFC3339Nano)
	}
	for _, c := range r.Cases {
		jc := jsonCase{
			ID: c.ID, Title: c.Title, Version: c.Version, Supported: c.Supported, DocWords: c.DocWords,
			DocSection: c.DocSection, Tags: c.Tags, File: c.File, Verdict: string(c.Verdict), Refused: c.Refused(),
			KeyCause: c.KeyCause, Error: c.Error, DurationMs: ms(c.Duration), Steps: []jsonStep{},
		}
		for _, st := range c.Steps {
			if st == nil {
				continue
			}
			js := jsonStep{
				Action: st.Action, Detail: st.Detail, Expected: st.Expected, Observed: st.Observed,
				Verdict: string(st.Verdict), Notes: st.Notes, DurationMs: ms(st.Duration),
			}
			for _, e := range st.Exchanges {
				js.Exchanges = append(js.Exchanges, jsonExchange{Command: e.Command, Request: e.Request,
					Response: e.Response, Status: e.Status, DurationMs: ms(e.Duration)})
			}
			jc.Steps = append(jc.Steps, js)
		}
		out.Cases = append(out.Cases, jc)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ReadJSON reads a JSON report back into a run (durations to the microsecond). A report of another
// schemaVersion is refused; fields this version does not know are ignored.
func ReadJSON(rd io.Reader) (*result.Run, error) {
	var in jsonReport
	if err := json.NewDecoder(io.LimitReader(rd, 1<<30)).Decode(&in); err != nil {
		return nil, fmt.Errorf("report: reading JSON: %w", err)
	}
	if in.SchemaVersion != JSONSchemaVersion {
		return nil, fmt.Errorf("report: JSON schemaVersion %d, this build reads %d", in.SchemaVersion, JSONSchemaVersion)
	}
	r := &result.Run{Duration: fromMs(in.DurationMs), Target: in.Target, Key: in.Key, Persona: in.Persona,
		Versions: in.Versions, LeftOut: in.LeftOut}
	if in.Started != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Started)
		if err != nil {
			return nil, fmt.Errorf("report: started: %w", err)
		}
		r.Started = t
	}
	for _, jc := range in.Cases {
		c := &result.Case{ID: jc.ID, Title: jc.Title, Version: jc.Version, Supported: jc.Supported,
			DocWords: jc.DocWords, DocSection: jc.DocSection, Tags: jc.Tags, File: jc.File,
			Verdict: result.Verdict(jc.Verdict), KeyCause: jc.KeyCause, Error: jc.Error, Duration: fromMs(jc.DurationMs)}
		for _, js := range jc.Steps {
			st := &result.Step{Action: js.Action, Detail: js.Detail, Expected: js.Expected, Observed: js.Observed,
				Verdict: result.Verdict(js.Verdict), Notes: js.Notes, Duration: fromMs(js.DurationMs)}
			for _, e := range js.Exchanges {
				st.Exchanges = append(st.Exchanges, result.Exchange{Command: e.Command, Request: e.Request,
					Response: e.Response, Status: e.Status, Duration: fromMs(e.DurationMs)})
			}
			c.Steps = append(c.Steps, st)
		}
		r.Cases = append(r.Cases, c)
	}
	return r, nil
}
