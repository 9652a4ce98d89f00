package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/scenarios/fieldmatch"
)

// errNoMatch is trace match's "nothing known": exit 1 without more words, as grep does.
var errNoMatch = errors.New("no known field failure matches")

// matchResult is trace match --json's document.
type matchResult struct {
	Trace   string     `json:"trace"`
	Matches []matchHit `json:"matches"`
}

type matchHit struct {
	fieldmatch.Hit
	Windows string `json:"windows"` // confirmed or inferred
	Sees    string `json:"sees"`
	Events  []int  `json:"events"`
}

// traceMatch is "fidolab trace match": which known field failures (the catalog's field-report
// scenarios) a trace resembles, and why.
func traceMatch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab trace match", stderr)
	asJSON := fs.Bool("json", false, "print one JSON document")
	var catalogs multiFlag
	fs.Var(&catalogs, "catalog", "a directory of your own scenario files whose field reports are matched too (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("trace match needs one TRACE file")
	}
	cat, err := loadCatalog(catalogs)
	if err != nil {
		return err
	}
	known, reports, err := cat.KnownFailures()
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	facts, err := fieldmatch.Read(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	res := matchResult{Trace: pos[0], Matches: []matchHit{}}
	for _, h := range facts.Match(known) {
		r := reports[h.ID]
		res.Matches = append(res.Matches, matchHit{Hit: h, Windows: r.Windows, Sees: r.Sees, Events: r.Events})
	}
	w := bufio.NewWriter(stdout)
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		writeMatches(w, res)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if len(res.Matches) == 0 {
		if !*asJSON {
			fmt.Fprintf(stderr, "fidolab trace match: %s: %v (%d known: fidolab run --list --filter tag:field-report)\n", pos[0], errNoMatch, len(known))
		}
		return errNoMatch
	}
	return nil
}

func writeMatches(w io.Writer, res matchResult) {
	if len(res.Matches) == 0 {
		fmt.Fprintf(w, "%s: no known field failure matches\n", res.Trace)
		return
	}
	for i, m := range res.Matches {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s resembles %s\n", res.Trace, m.ID)
		fmt.Fprintf(w, "  %s\n", m.Title)
		fmt.Fprintf(w, "  source     %s (Windows side %s)\n", m.Source, m.Windows)
		fmt.Fprintf(w, "  user sees  %s\n", m.Sees)
		fmt.Fprintf(w, "  matched    %s\n", m.Signature)
		for _, why := range m.Why {
			fmt.Fprintf(w, "    %s\n", why)
		}
		if len(m.Events) > 0 {
			ids := make([]string, len(m.Events))
			for j, e := range m.Events {
				ids[j] = strconv.Itoa(e)
			}
			fmt.Fprintf(w, "  event log  Microsoft-Windows-WebAuthN/Operational %s\n", strings.Join(ids, ", "))
		}
		fmt.Fprintf(w, "  replay     fidolab run --filter %s\n", m.ID)
	}
}
