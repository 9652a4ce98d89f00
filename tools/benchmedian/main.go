// Command benchmedian reads `go test -bench` output and prints the median of every benchmark and
// unit, one "name<TAB>unit<TAB>median" line each, in the order the benchmarks first appear.
// .ci/bench builds docs/performance.md from these lines.
//
//	go -C tools run ./benchmedian /abs/path/raw.txt >medians.tsv
//
// Names keep their "Benchmark" prefix and lose the -GOMAXPROCS suffix; units and values are the
// ones go test printed (ns/op, not benchfmt's tidied sec/op). The parsing is golang.org/x/perf's
// benchfmt and the median its benchmath (the summary benchstat shows), so a line benchstat cannot
// read is an error here too rather than a silently skipped sample. It lives in the tools module so
// that x/perf stays out of fidolab's go.mod.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: benchmedian FILE... (go test -bench output; - for stdin)")
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	if err := run(out, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchmedian:", err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "benchmedian:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, files []string) error {
	var inputs []input
	for _, name := range files {
		if name == "-" {
			inputs = append(inputs, input{name: "stdin", r: os.Stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		inputs = append(inputs, input{name: name, r: f})
	}
	meds, err := medians(inputs...)
	if err != nil {
		return err
	}
	return write(w, meds)
}

type input struct {
	name string
	r    io.Reader
}

// Median is the median of one benchmark's values in one unit.
type Median struct {
	Name   string // "BenchmarkSign/fast", without the -GOMAXPROCS suffix
	Unit   string // as go test printed it: "ns/op", "B/op", "allocs/op", custom units
	Value  float64
	Values int // how many samples the median is of
}

// series collects one benchmark's samples, unit by unit in first-seen order.
type series struct {
	name  string
	pkg   string
	units []string
	vals  map[string][]float64
}

// medians reads benchmark results from every input and returns the median per benchmark and unit.
// A benchmark line that does not parse, or the same benchmark name in two packages (whose samples
// must not be mixed), is an error; so is an input without any result.
func medians(inputs ...input) ([]Median, error) {
	var (
		order []*series
		byKey = map[string]*series{}
		errs  []error
	)
	for _, in := range inputs {
		rd := benchfmt.NewReader(in.r, in.name)
		for rd.Scan() {
			switch rec := rd.Result().(type) {
			case *benchfmt.SyntaxError:
				errs = append(errs, rec)
			case *benchfmt.Result:
				name := "Benchmark" + withoutProcs(rec.Name)
				pkg := rec.GetConfig("pkg")
				s := byKey[name]
				if s == nil {
					s = &series{name: name, pkg: pkg, vals: map[string][]float64{}}
					byKey[name] = s
					order = append(order, s)
				} else if s.pkg != pkg {
					errs = append(errs, fmt.Errorf("%s is in two packages (%s and %s): run them apart or rename one", name, s.pkg, pkg))
					continue
				}
				for _, v := range rec.Values {
					unit, val := v.Unit, v.Value
					if v.OrigUnit != "" {
						unit, val = v.OrigUnit, v.OrigValue
					}
					if _, ok := s.vals[unit]; !ok {
						s.units = append(s.units, unit)
					}
					s.vals[unit] = append(s.vals[unit], val)
				}
			}
		}
		if err := rd.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, errors.New("no benchmark results in the input")
	}
	var out []Median
	for _, s := range order {
		for _, u := range s.units {
			xs := s.vals[u]
			sum := benchmath.AssumeNothing.Summary(benchmath.NewSample(xs, &benchmath.DefaultThresholds), 0.95)
			out = append(out, Median{Name: s.name, Unit: u, Value: sum.Center, Values: len(xs)})
		}
	}
	return out, nil
}

// withoutProcs drops the -GOMAXPROCS suffix of a benchmark name ("Sign/fast-2" → "Sign/fast").
func withoutProcs(n benchfmt.Name) string {
	base, parts := n.Parts()
	var b strings.Builder
	b.Write(base)
	for _, p := range parts {
		if len(p) > 0 && p[0] == '-' {
			continue // only the last part can be GOMAXPROCS
		}
		b.Write(p)
	}
	return b.String()
}

// write prints one "name<TAB>unit<TAB>median" line per median, the median with 6 significant digits.
func write(w io.Writer, meds []Median) error {
	for _, m := range meds {
		if _, err := fmt.Fprintf(w, "%s\t%s\t%s\n", m.Name, m.Unit, strconv.FormatFloat(m.Value, 'g', 6, 64)); err != nil {
			return err
		}
	}
	return nil
}
