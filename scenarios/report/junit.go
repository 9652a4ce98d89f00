package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fidolab/fidolab/scenarios/result"
)

// The JUnit schema as Jenkins (junit and xUnit plugins) and GitLab read it: one testsuite per
// scenario, one testcase per Windows version, so a CI page shows which versions a scenario broke
// on. Only attributes the Jenkins schema allows are written (testdata/junit-jenkins.xsd): the run's
// start time goes on each testsuite, since <testsuites> has no timestamp attribute.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// junitCase's children are in the schema's order: error, failure, system-out.
type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Error     *junitProblem `xml:"error,omitempty"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// junitSkipped is a testcase not run on purpose; message says why.
type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnit writes the run as JUnit XML. Regressions are <failure type="fail">, cases the key under
// test breaks are <failure type="key-incompatible">, cases that could not run are <error>.
// Each testcase's system-out holds its step log with every CTAP exchange.
func JUnit(w io.Writer, r *result.Run) error {
	if r == nil {
		return fmt.Errorf("report: no run")
	}
	r = withoutNil(r)
	s := r.Summary()
	out := junitSuites{
		Name: "fidolab run", Tests: s.Total, Failures: s.Failed + s.KeyIncompatible, Errors: s.Errors,
		Time: seconds(r.Duration),
	}
	var started string
	if !r.Started.IsZero() {
		started = r.Started.UTC().Format(time.RFC3339)
	}
	rows, cell := matrix(r)
	vs := versionsOf(r)
	for _, id := range rows {
		suite := junitSuite{Name: id, Timestamp: started}
		var total time.Duration
		for _, v := range vs {
			c := cell[id][v]
			if c == nil {
				continue
			}
			if len(suite.Properties) == 0 {
				suite.Properties = suiteProperties(r, c)
			}
			total += c.Duration
			tc := junitCase{Name: c.Version, Classname: "fidolab." + id, Time: seconds(c.Duration), SystemOut: stepLog(c)}
			switch c.Verdict {
			case result.Pass:
			case result.Fail:
				tc.Failure = &junitProblem{Type: "fail", Message: failureMessage(c), Text: failureText(c)}
				suite.Failures++
			case result.KeyIncompatible:
				tc.Failure = &junitProblem{Type: "key-incompatible", Message: failureMessage(c), Text: failureText(c)}
				suite.Failures++
			case result.Skipped:
				tc.Skipped = &junitSkipped{Message: oneLine(c.Error)}
				suite.Skipped++
			default:
				msg := oneLine(c.Error)
				if msg == "" {
					msg = "verdict " + verdictWord(c.Verdict)
				}
				tc.Error = &junitProblem{Type: "error", Message: msg, Text: c.Error}
				suite.Errors++
			}
			suite.Tests++
			suite.Cases = append(suite.Cases, tc)
		}
		suite.Time = seconds(total)
		out.Suites = append(out.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func suiteProperties(r *result.Run, c *result.Case) []junitProperty {
	var p []junitProperty
	add := func(k, v string) {
		if v != "" {
			p = append(p, junitProperty{k, v})
		}
	}
	add("title", c.Title)
	add("document", oneLine(c.DocWords))
	add("document.section", c.DocSection)
	add("catalog.file", c.File)
	add("tags", strings.Join(c.Tags, ","))
	add("target", r.Target)
	add("key", r.Key)
	add("persona", r.Persona)
	return p
}

// failureMessage is the one line a CI page shows: what the document expects against what happened.
func failureMessage(c *result.Case) string {
	i, s := failingStep(c)
	var msg string
	if s == nil {
		msg = "case failed"
	} else {
		msg = fmt.Sprintf("step %d %s: expected %s, observed %s", i+1, s.Action, s.Expected, s.Observed)
	}
	if c.Verdict == result.KeyIncompatible && c.KeyCause != "" {
		msg += "; key: " + oneLine(c.KeyCause)
	}
	return msg
}

func failureText(c *result.Case) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", failureMessage(c))
	if c.DocWords != "" {
		fmt.Fprintf(&b, "document: %q\n", oneLine(c.DocWords))
	}
	if _, s := failingStep(c); s != nil {
		if s.Expected.Reason != "" {
			fmt.Fprintf(&b, "expected because: %s\n", oneLine(s.Expected.Reason))
		}
		if s.Observed.Reason != "" {
			fmt.Fprintf(&b, "observed reason: %s\n", oneLine(s.Observed.Reason))
		}
	}
	if c.KeyCause != "" {
		fmt.Fprintf(&b, "key cause: %s\n", oneLine(c.KeyCause))
	}
	return b.String()
}

// stepLog is a case told step by step in plain text, every exchange included.
func stepLog(c *result.Case) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on Windows %s: %s\n", c.ID, c.Version, oneLine(c.Title))
	if c.DocWords != "" {
		fmt.Fprintf(&b, "document: %q", oneLine(c.DocWords))
		if c.DocSection != "" {
			fmt.Fprintf(&b, " (%s)", oneLine(c.DocSection))
		}
		b.WriteString("\n")
	}
	if c.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", c.Error)
	}
	for i, s := range c.Steps {
		if s == nil {
			continue
		}
		fmt.Fprintf(&b, "\nstep %d/%d %s", i+1, len(c.Steps), s.Action)
		if s.Detail != "" {
			fmt.Fprintf(&b, " (%s)", oneLine(s.Detail))
		}
		fmt.Fprintf(&b, ": %s\n", verdictWord(s.Verdict))
		fmt.Fprintf(&b, "  expected %s%s\n  observed %s%s\n", s.Expected, reasonSuffix(s.Expected), s.Observed, reasonSuffix(s.Observed))
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
		for _, e := range s.Exchanges {
			fmt.Fprintf(&b, "  %s -> %s (%s)\n", e.Command, e.Status, e.Duration)
			for _, part := range [][2]string{{"request", e.Request}, {"response", e.Response}} {
				if strings.TrimSpace(part[1]) == "" {
					continue
				}
				fmt.Fprintf(&b, "    %s:\n", part[0])
				for _, l := range strings.Split(strings.TrimRight(part[1], "\n"), "\n") {
					fmt.Fprintf(&b, "      %s\n", l)
				}
			}
		}
	}
	return b.String()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
