package persona

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/authenticator/userfile"
	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a persona file. A persona is a couple of kilobytes of YAML; a larger file is
// not one (or is /dev/zero), and is refused before it is read.
const MaxFileSize = 64 << 10

// Load returns a built-in persona by name, or reads a persona file when ref names a file (it
// contains a path separator or ends in .yaml/.yml). A file may say `base: NAME` to start from a
// built-in persona and override only some fields. Only a regular file of at most MaxFileSize
// bytes is read: a named pipe, a device or a directory is refused without reading from it.
func Load(ref string) (*Persona, error) {
	if !strings.ContainsRune(ref, os.PathSeparator) && !strings.HasSuffix(ref, ".yaml") && !strings.HasSuffix(ref, ".yml") {
		return Builtin(ref)
	}
	b, err := userfile.Read(ref, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("persona file: %w", err)
	}
	return Parse(b, ref)
}

// Parse reads a persona from YAML; name is the file in error messages. Every problem of the file
// is reported at once, each with its line and the field's YAML path, in the words of YAML (a
// list, a number, true or false), never of Go types. The error is a *FileError.
func Parse(b []byte, name string) (*Persona, error) {
	fe := &FileError{File: name}
	if len(b) > MaxFileSize {
		fe.add(0, "", "larger than %s: not a persona file", userfile.Size(MaxFileSize))
		return nil, fe
	}
	root := document(b, fe)
	if root == nil {
		return nil, fe
	}
	c := &checker{lines: map[string]int{}}
	c.mapping(root, personaType, "", true)
	fe.Problems = c.problems
	formOK := len(fe.Problems) == 0
	p := &Persona{}
	if base, line := c.base(root); base != "" {
		bp, err := Builtin(base)
		if err != nil {
			fe.add(line, "base", "%v", err)
			return nil, fe
		}
		p = bp
	}
	if err := root.Decode(p); err != nil {
		// The check above leaves only what decodes; this is a bug, still reported as an error.
		fe.add(0, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, fe
	}
	var ve *ValidationError
	if err := p.Validate(); errors.As(err, &ve) {
		for _, pr := range ve.Problems {
			// After a problem of form, the persona lacks what was wrong: only its problems with
			// what the file did write are its own.
			if pr.Line = c.lineOf(pr); pr.Line > 0 || formOK {
				fe.Problems = append(fe.Problems, pr)
			}
		}
		fe.Persona = p.Name
	} else if err != nil {
		fe.add(0, "", "%v", err)
	}
	if len(fe.Problems) > 0 {
		slices.SortStableFunc(fe.Problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
		return nil, fe
	}
	return p, nil
}

// document returns the one mapping a persona file holds, or nil with the problem added to fe: an
// empty file, a syntax error, a second document, or something other than a mapping.
func document(b []byte, fe *FileError) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if err != nil && !errors.Is(err, io.EOF) {
		fe.Problems = append(fe.Problems, syntaxProblem(err))
		return nil
	}
	if err != nil || len(doc.Content) == 0 {
		fe.add(0, "", "the file is empty: a persona is a mapping of fields, e.g. `base: default` and `name: my-key` on two lines (docs/personas.md)")
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		fe.add(next.Line, "", "a second YAML document (after ---): a persona file holds one persona")
		return nil
	case !errors.Is(err, io.EOF):
		fe.Problems = append(fe.Problems, syntaxProblem(err))
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		fe.add(root.Line, "", "want a mapping of fields (name: value lines), got %s", describe(root))
		return nil
	}
	return root
}

// syntaxProblem turns a YAML syntax error ("yaml: line 3: could not find expected ':'") into a
// problem at its line; an error without a line is about the whole file.
func syntaxProblem(err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, what, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return Problem{Line: n, Msg: "YAML syntax: " + what}
			}
		}
	}
	return Problem{Msg: "YAML syntax: " + msg}
}

// Problem is one thing wrong with a persona.
type Problem struct {
	Line  int    // line in the file (1-based); 0 when it is not one line's problem
	Field string // YAML path of the field, e.g. quirks.processingDelayMs; "" for the persona as a whole
	Msg   string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Msg
	}
	return p.Field + ": " + p.Msg
}

// FileError is every problem found in one persona file, one per line of the message:
//
//	vendor.yaml:4: quirks.processingDelayMs: 999999999 is outside 0..600000
//	vendor.yaml: the file is empty: …
type FileError struct {
	File     string
	Persona  string // the persona's name, when the file got as far as naming one
	Problems []Problem
}

func (e *FileError) add(line int, field, format string, a ...any) {
	e.Problems = append(e.Problems, Problem{Line: line, Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (e *FileError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		if p.Line == 0 && e.Persona != "" {
			fmt.Fprintf(&b, "persona %q: ", e.Persona)
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// ValidationError is every problem Validate found in a persona.
type ValidationError struct {
	Persona  string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("persona %q: %s", e.Persona, strings.Join(parts, "; "))
}
