package persona

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// goWords are how a message leaks Go: a type name or a yaml library phrase.
var goWords = regexp.MustCompile(`\b(u?int(8|16|32|64)?|float(32|64)|struct|unmarshal|!!\w+)\b|persona\.|\bEOF\b`)

func parseErr(t *testing.T, body string) string {
	t.Helper()
	_, err := Parse([]byte(body), "vendor.yaml")
	require.Error(t, err, body)
	msg := err.Error()
	require.NotRegexp(t, goWords, msg, "the message speaks YAML, not Go")
	require.NotContains(t, msg, ":0:", "a whole-file error has no line")
	for _, line := range strings.Split(msg, "\n") {
		require.True(t, strings.HasPrefix(line, "vendor.yaml:"), "every line names the file: %q", line)
	}
	return msg
}

// Each message says the line, the field's YAML path and what YAML is wanted.
func TestParseSpeaksYAML(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, want string }{
		{"", "vendor.yaml: the file is empty: a persona is a mapping of fields"},
		{"# nothing but a comment\n", "vendor.yaml: the file is empty"},
		{"base: default\nname: x\n---\nname: y\n", "vendor.yaml:3: a second YAML document"},
		{"- base: default\n", "vendor.yaml:1: want a mapping of fields (name: value lines), got a list"},
		{"default\n", `vendor.yaml:1: want a mapping of fields (name: value lines), got "default"`},
		{"base: default\nname: x\n  bad: indent\n", "vendor.yaml:3: YAML syntax:"},
		{"base: default\nnmae: x\n", "vendor.yaml:2: nmae: unknown field (did you mean name?)"},
		{"base: default\nname: x\nclientPIN: true\n", "vendor.yaml:3: clientPIN: unknown field (did you mean clientPin?)"},
		{"base: default\nname: x\noldestFirst: true\n", "vendor.yaml:3: oldestFirst: unknown field (it belongs elsewhere: quirks.oldestFirst)"},
		{"base: default\nname: x\nquirks: {slow: true}\n", "vendor.yaml:3: quirks.slow: unknown field (known: "},
		{"base: default\nname: x\nwhatever: 1\n", "vendor.yaml:3: whatever: unknown field (the fields are listed in docs/personas.md)"},
		{"base: default\nname: x\nname: y\n", "vendor.yaml:3: name: given twice (first at line 2)"},
		{"base: default\nname: [x]\n", "vendor.yaml:2: name: want text, got a list"},
		{"base: default\nname: x\nresidentCapacity: many\n", `vendor.yaml:3: residentCapacity: want a number, got "many"`},
		{"base: default\nname: x\nresidentCapacity: 2.5\n", "vendor.yaml:3: residentCapacity: want a whole number, got 2.5"},
		{"base: default\nname: x\nresidentCapacity: 99999999999999999999999\n", "residentCapacity: 99999999999999999999999 is too large a number"},
		{"base: default\nname: x\nclientPin: yes\n", `vendor.yaml:3: clientPin: want true or false, got "yes"`},
		{"base: default\nname: x\nversions: FIDO_2_1\n", `vendor.yaml:3: versions: want a list of texts like [a, b] ([] for none), got "FIDO_2_1"`},
		{"base: default\nname: x\nextensions:\n", "vendor.yaml:3: extensions: want a list of texts like [a, b] ([] for none), got nothing"},
		{"base: default\nname: x\nalgorithms: [-7, ES256]\n", `vendor.yaml:3: algorithms[1]: want a number, got "ES256"`},
		{"base: default\nname: x\nhid: 5\n", `vendor.yaml:3: hid: want a mapping (name: value lines), got "5"`},
		{"base: default\nname: x\nhid: {vendorId: 70000}\n", "vendor.yaml:3: hid.vendorId: 70000 is outside 0..65535"},
		{"base: default\nname: x\naaguid: nothex\n", `vendor.yaml:3: aaguid: aaguid "nothex": want 32 hex digits`},
		{"base: default\nname: x\naaguid: [1]\n", "vendor.yaml:3: aaguid: want a UUID like 00112233-4455-6677-8899-aabbccddeeff, got a list"},
		{"base: default\nname: &n x\ndescription: *n\n", "vendor.yaml:3: description: aliases (*n) are not supported"},
		{"base: [default]\nname: x\n", "vendor.yaml:1: base: want the name of a built-in persona"},
		{"base: nosuch\nname: x\n", `vendor.yaml:1: base: no built-in persona "nosuch"`},
		{"base: default\nname: \"a\\tb\"\n", "vendor.yaml:2: name: control character U+0009"},
		{"base: default\nname: x\nhid: {product: " + strings.Repeat("p", 127) + "}\n", "hid.product: 127 UTF-16 units long, at most 126 (a USB string descriptor)"},
	}
	for _, tt := range tests {
		msg := parseErr(t, tt.body)
		require.Contains(t, msg, tt.want, "%q", tt.body)
	}
}

// Every problem of a file is reported at once, in file order.
func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	msg := parseErr(t, "base: default\nnmae: x\nquirks: {processingDelayMs: 999999999, resetWindowSeconds: -1}\nmaxMsgSize: 100\n")
	require.Equal(t, strings.Join([]string{
		"vendor.yaml:2: nmae: unknown field (did you mean name?)",
		"vendor.yaml:3: quirks.processingDelayMs: 999999999 is outside 0..600000 (at most 10 minutes)",
		"vendor.yaml:3: quirks.resetWindowSeconds: -1 is outside 0..3600 (0 is the spec's 10 s)",
		"vendor.yaml:4: maxMsgSize: 100 is outside 1024..7609 (CTAPHID carries at most 7609 bytes; CTAP asks for at least 1024)",
	}, "\n"), msg)
}

// TestEveryNumberHasARange: every numeric field of Persona (and every list of numbers) has an
// entry in the range table, every entry names such a field, and every range fits its Go type (so
// a number the file check admits always decodes). A new numeric field fails here until its range
// is added to numbers (numbers.go).
func TestEveryNumberHasARange(t *testing.T) {
	t.Parallel()
	numeric := map[string]reflect.Type{}
	for _, path := range leafPaths(personaType, "") {
		v, ok := fieldByPath(reflect.ValueOf(&Persona{}).Elem(), path)
		require.True(t, ok, path)
		typ := v.Type()
		if typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64 {
			numeric[path] = typ
		}
	}
	require.NotEmpty(t, numeric)
	for path, typ := range numeric {
		s, ok := numbers[path]
		require.True(t, ok, "%s is a number without a range: add it to numbers in numbers.go", path)
		if s.listed {
			continue
		}
		require.LessOrEqual(t, s.min, s.max, path)
		v := reflect.New(typ).Elem()
		if typ.Kind() <= reflect.Int64 {
			require.False(t, v.OverflowInt(s.min) || v.OverflowInt(s.max), "%s: range %d..%d does not fit a %s", path, s.min, s.max, typ)
		} else {
			require.GreaterOrEqual(t, s.min, int64(0), path)
			require.False(t, v.OverflowUint(uint64(s.max)), "%s: range %d..%d does not fit a %s", path, s.min, s.max, typ)
		}
	}
	for path := range numbers {
		require.Contains(t, numeric, path, "numbers has %s, which is not a numeric field", path)
	}
}

// Every ranged number is refused one past each end of its range, at its line, and accepted at
// both ends (as far as the range is concerned).
func TestParseRangeChecksEveryNumber(t *testing.T) {
	t.Parallel()
	for _, path := range sortedKeys(numbers) {
		s := numbers[path]
		if s.listed {
			continue
		}
		doc := func(v int64) string {
			parts := strings.Split(path, ".")
			if len(parts) == 2 {
				return fmt.Sprintf("base: default\nname: x\n%s:\n  %s: %d\n", parts[0], parts[1], v)
			}
			return fmt.Sprintf("base: default\nname: x\n%s: %d\n", path, v)
		}
		line := 3
		if strings.Contains(path, ".") {
			line = 4
		}
		for _, v := range []int64{s.min - 1, s.max + 1} {
			msg := parseErr(t, doc(v))
			require.Contains(t, msg, fmt.Sprintf("vendor.yaml:%d: %s: %d is outside %d..%d", line, path, v, s.min, s.max))
		}
		for _, v := range []int64{s.min, s.max} {
			_, err := Parse([]byte(doc(v)), "vendor.yaml")
			if err != nil {
				require.NotContains(t, err.Error(), "is outside", "%s: %d", path, v)
			}
		}
	}
}

// The same table guards personas made in Go.
func TestValidateRangeChecks(t *testing.T) {
	t.Parallel()
	p, err := Builtin("default")
	require.NoError(t, err)
	p.Quirks.ProcessingDelayMs, p.Quirks.ResetWindowSeconds, p.HID.VendorID = 999_999_999, -1, 0
	err = p.Validate()
	require.ErrorContains(t, err, "quirks.processingDelayMs: 999999999 is outside 0..600000")
	require.ErrorContains(t, err, "quirks.resetWindowSeconds: -1 is outside 0..3600")
	u, err := Builtin("u2f")
	require.NoError(t, err)
	require.NoError(t, u.Validate(), "a U2F-only persona leaves the CTAP2 numbers 0")
}

// docs/personas.md promises that inconsistent combinations are rejected: each, with the fix.
func TestParseRejectsInconsistentCombinations(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, want string }{
		{"base: default\nname: x\nversions: [U2F_V2, FIDO_2_0]\n",
			"vendor.yaml:3: versions: does not list FIDO_2_1, but authnrCfg, credMgmt, enterpriseAttestation, largeBlobs, makeCredUvNotRqd, pinUvAuthToken, selection are CTAP 2.1 features"},
		{"base: ctap20\nname: x\ncredMgmt: true\n", `vendor.yaml: persona "x": versions: does not list FIDO_2_1, but credMgmt is a CTAP 2.1 feature: add FIDO_2_1, or set credMgmt: false`},
		{"base: ctap20\nname: x\ncredMgmtPreview: true\n", "credMgmtPreview is a FIDO_2_1_PRE feature"},
		{"base: ctap20\nname: x\npinUvAuthProtocols: [2, 1]\n", "vendor.yaml:3: pinUvAuthProtocols: PIN/UV protocol 2 is CTAP 2.1"},
		{"base: default\nname: x\nbuiltInUv: false\n", "bioEnrollPreview: fingerprint enrollment needs a sensor"},
		{"base: default\nname: x\nmaxFingerprints: 0\n", "builtInUv: a fingerprint sensor needs maxFingerprints and enrollSamples of at least 1 (have 0 and 4)"},
		{"base: default\nname: x\nclientPin: false\nbuiltInUv: false\nbioEnrollPreview: false\n",
			"pinUvAuthToken: needs a PIN or built-in user verification"},
		{"base: default\nname: x\nu2f: false\n", "versions: lists U2F_V2, but u2f is false"},
		{"base: default\nname: x\nversions: [FIDO_2_0, FIDO_2_1]\n", "u2f: true, but versions does not list U2F_V2"},
		{"base: default\nname: x\nversions: [U2F_V2]\nu2f: true\n", "versions: lists no FIDO_2_x version"},
		{"base: default\nname: x\nversions: [U2F_V2, FIDO_2_0, FIDO_2_1, FIDO_3]\n", `vendor.yaml:3: versions[3]: unknown version "FIDO_3"`},
		{"base: default\nname: x\nversions: [U2F_V2, FIDO_2_0, FIDO_2_1, FIDO_2_1]\n", "versions[3]: FIDO_2_1 listed twice"},
		{"base: default\nname: x\nextensions: [hmac-secret, hmac-secrt]\n", `extensions[1]: unknown extension "hmac-secrt"`},
		{"base: default\nname: x\nextensions: [hmac-secret-mc]\n", "vendor.yaml:3: extensions: hmac-secret-mc needs hmac-secret"},
		{"base: default\nname: x\nmaxCredBlobLength: 16\n", "vendor.yaml:3: maxCredBlobLength: 16, but the credBlob extension needs at least 32"},
		{"base: default\nname: x\nmaxSerializedLargeBlobArray: 512\n", "maxSerializedLargeBlobArray: 512, but largeBlobs needs at least 1024"},
		{"base: default\nname: x\npinUvAuthProtocols: [2, 2]\n", "pinUvAuthProtocols[1]: 2 listed twice"},
		{"base: default\nname: x\nresidentCapacity: 0\n", "residentKeys with residentCapacity 0"},
	}
	for _, tt := range tests {
		require.Contains(t, parseErr(t, tt.body), tt.want, "%q", tt.body)
	}
	// The documented ways out are accepted.
	for _, ok := range []string{
		"base: ctap20\nname: x\n",
		"base: default\nname: x\nversions: [U2F_V2, FIDO_2_0]\npinUvAuthProtocols: [1]\ncredMgmt: false\nauthnrCfg: false\nlargeBlobs: false\n" +
			"pinUvAuthToken: false\nmakeCredUvNotRqd: false\nselection: false\nenterpriseAttestation: false\ncredMgmtPreview: false\nbioEnrollPreview: false\n",
		"base: ctap20\nname: x\nversions: [U2F_V2, FIDO_2_0, FIDO_2_1_PRE]\ncredMgmtPreview: true\n",
		"base: default\nname: x\nu2f: false\nversions: [FIDO_2_0, FIDO_2_1]\n",
	} {
		_, err := Parse([]byte(ok), "vendor.yaml")
		require.NoError(t, err, ok)
	}
}

// A persona file is read only when it is a regular file of at most MaxFileSize bytes; a named
// pipe is refused at once instead of waiting for a writer.
func TestLoadRefusesWhatIsNotAPersonaFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.yaml")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "big.yaml")
	require.NoError(t, os.WriteFile(big, []byte("base: default\nname: big\n"+strings.Repeat("# padding\n", MaxFileSize/10)), 0o600))

	done := make(chan error, 1)
	go func() { _, err := Load(fifo); done <- err }()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "pipe.yaml: not a regular file: it is a named pipe")
	case <-time.After(10 * time.Second):
		t.Fatal("Load blocked on a named pipe")
	}
	_, err := Load("/dev/zero")
	require.ErrorContains(t, err, "/dev/zero: not a regular file: it is a character device")
	_, err = Load(big)
	require.ErrorContains(t, err, "big.yaml: file too large: larger than 64 KiB")
	_, err = Parse(make([]byte, MaxFileSize+1), "bytes.yaml")
	require.ErrorContains(t, err, "bytes.yaml: larger than 64 KiB")
}

// A state file records its persona with yaml.Marshal: every built-in persona reads back equal.
func TestMarshalledPersonaParses(t *testing.T) {
	t.Parallel()
	for _, n := range Names() {
		p, err := Builtin(n)
		require.NoError(t, err)
		b, err := yaml.Marshal(p)
		require.NoError(t, err)
		back, err := Parse(b, "state")
		require.NoError(t, err, "%s:\n%s", n, b)
		again, err := yaml.Marshal(back)
		require.NoError(t, err)
		require.Equal(t, string(b), string(again), n)
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range Names() {
		b, _ := builtinFS.ReadFile("builtin/" + n + ".yaml")
		f.Add(b)
	}
	f.Add([]byte("base: default\nname: x\nquirks: {processingDelayMs: 5}\nhid: {vendorId: 0x10}\n"))
	f.Add([]byte("base: default\nname: &a x\ndescription: *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b, "fuzz.yaml")
		if err != nil {
			require.Nil(t, p)
			require.NotRegexp(t, goWords, withoutQuotedInput(err.Error(), b))
			return
		}
		require.NoError(t, p.Validate(), "Parse admitted a persona Validate refuses")
	})
}

// docs/personas.md lists every range of the table, as the table has it.
func TestDocsListEveryRange(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "personas.md"))
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| (`[^|]+) \\| (-?[0-9]+)\\.\\.([0-9]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		for _, f := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(m[1], -1) {
			documented[f[1]] = m[2] + ".." + m[3]
		}
	}
	for path, s := range numbers {
		if s.listed {
			continue
		}
		require.Equal(t, fmt.Sprintf("%d..%d", s.min, s.max), documented[path], "docs/personas.md's range of %s", path)
	}
	for path := range documented {
		require.Contains(t, numbers, path, "the docs list a range the table does not have")
	}
}

// quoted is a Go-quoted string in a message: how describe shows what the user wrote.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// withoutQuotedInput drops from msg the quoted values that are the user's own words (a scalar of
// the input, perhaps cut short with …), so that a persona whose value happens to be "int8" is not
// taken for a message that leaks Go.
func withoutQuotedInput(msg string, input []byte) string {
	var scalars []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode || n.Kind == yaml.AliasNode {
			scalars = append(scalars, n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	var doc yaml.Node
	if yaml.Unmarshal(input, &doc) == nil {
		walk(&doc)
	}
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		v, err := strconv.Unquote(q)
		if err != nil {
			return q
		}
		v = strings.TrimSuffix(v, "…")
		for _, s := range scalars {
			if strings.HasPrefix(s, v) {
				return `"…"`
			}
		}
		return q
	})
}
