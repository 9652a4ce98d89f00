// Package peers runs real FIDO2 clients (libfido2, python-fido2) against an
// emulated key over the report socket and collects what each operation did.
package peers

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Result values a peer reports for one operation.
const (
	// ResultPass means the operation succeeded and its output was checked.
	ResultPass = "pass"
	// ResultFail means the operation errored, hung, or produced a wrong output.
	ResultFail = "fail"
	// ResultUnsupported means the persona lacks the feature and the client got
	// the error it expects for that (not a hang, not a wrong answer).
	ResultUnsupported = "unsupported"
)

// ErrMissing is wrapped by errors that mean a peer's toolchain (compiler,
// library, interpreter, module) is not installed, as opposed to a peer that
// ran and broke. Tests pass such errors to peertest.Require.
var ErrMissing = errors.New("peer not installed")

// Row is one operation a peer ran against one persona.
type Row struct {
	Client    string `json:"client"`
	Operation string `json:"operation"`
	Persona   string `json:"persona"`
	Result    string `json:"result"`
	Detail    string `json:"detail"`
}

// String renders a row for test logs.
func (r Row) String() string {
	s := fmt.Sprintf("%s/%s/%s: %s", r.Client, r.Persona, r.Operation, r.Result)
	if r.Detail != "" {
		s += " (" + r.Detail + ")"
	}
	return s
}

// maxRowLine bounds one JSON line so a runaway peer cannot exhaust memory.
const maxRowLine = 1 << 20

// ParseRows reads the JSON lines a peer prints on stdout. Blank lines and
// lines that do not start with '{' (stray prints of a peer) are skipped; a
// line that starts with '{' but is not a valid row is an error, as is a row
// whose result is not one of pass, fail, unsupported.
func ParseRows(r io.Reader) ([]Row, error) {
	var rows []Row
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxRowLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var row Row
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&row); err != nil {
			return rows, fmt.Errorf("peers: line %d: %w", n, err)
		}
		switch row.Result {
		case ResultPass, ResultFail, ResultUnsupported:
		default:
			return rows, fmt.Errorf("peers: line %d: unknown result %q", n, row.Result)
		}
		if row.Operation == "" {
			return rows, fmt.Errorf("peers: line %d: row without operation", n)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return rows, fmt.Errorf("peers: reading rows: %w", err)
	}
	return rows, nil
}

// Failed returns the rows whose result is fail.
func Failed(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Result == ResultFail {
			out = append(out, r)
		}
	}
	return out
}
