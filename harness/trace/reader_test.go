package trace_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
)

// readErr reads a whole trace and returns the first error (nil for a clean end).
func readErr(data []byte) error {
	r, err := trace.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	for _, err := range r.All() {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestReaderNamesTheBadLine(t *testing.T) {
	t.Parallel()
	_, good, _ := record(t)
	require.NoError(t, readErr(good))
	lines := strings.SplitAfter(string(good), "\n")
	lines = lines[:len(lines)-1] // the empty string after the final newline
	n := len(lines)
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "")) }
	replace := func(i int, s string) []byte {
		c := append([]string(nil), lines...)
		c[i-1] = s
		return join(c)
	}
	tests := []struct {
		name string
		data []byte
		line int
		want string
		is   error
	}{
		{"empty file", nil, 1, "empty file", nil},
		{"not a trace", []byte("{\"format\":\"pcap\"}\n"), 1, "not a fidolab trace", nil},
		{"not JSON", []byte("hello\n"), 1, "not a fidolab trace header", nil},
		{"newer version", []byte(`{"format":"fidolab-trace","version":9}` + "\n"), 1, "newer than this fidolab reads", nil},
		{"cut mid-record", join(lines)[:len(good)-len(lines[n-1])-20], n - 1, "no newline", trace.ErrTruncated},
		{"no end record", join(lines[:n-1]), n - 1, "no end record", trace.ErrTruncated},
		{"a record missing", join(append(append([]string(nil), lines[:5]...), lines[6:]...)), n - 1, "records are missing", nil},
		{"corrupt JSON", replace(7, `{"type":"report","t":"2026-11-25T16:35:42Z","src":1,"from":"host","hex":"zz"}`+"\n"), 7, "not hex", nil},
		{"unknown source", replace(7, `{"type":"report","t":"2026-11-25T16:35:42Z","src":9,"from":"host","hex":"00"}`+"\n"), 7, "source 9", nil},
		{"bad direction", replace(7, `{"type":"report","t":"2026-11-25T16:35:42Z","src":1,"from":"me","hex":"00"}`+"\n"), 7, `report from "me"`, nil},
		{"no time", replace(7, `{"type":"mark","text":"x"}`+"\n"), 7, "no time", nil},
		{"length mismatch", replace(7, `{"type":"exchange","t":"2026-11-25T16:35:42Z","request":{"hid":"CBOR","len":3,"hex":"04"}}`+"\n"), 7, "len 3", nil},
		{"after the end", append(append([]byte(nil), good...), lines[3]...), n + 1, "after the end record", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := readErr(tc.data)
			require.Error(t, err)
			var fe *trace.FormatError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.line, fe.Line, "%v", err)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "trace line ")
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
}

func TestReaderSkipsUnknownRecordTypes(t *testing.T) {
	t.Parallel()
	_, good, _ := record(t)
	lines := strings.SplitAfter(string(good), "\n")
	// A future record type, counted in the end record like any other.
	extra := `{"type":"power","t":"2026-11-25T16:35:42Z","text":"unplugged","future_field":1}` + "\n"
	end := lines[len(lines)-2]
	var endN int
	_, err := trace.NewReader(strings.NewReader(lines[0]))
	require.NoError(t, err)
	r, err := trace.NewReader(bytes.NewReader(good))
	require.NoError(t, err)
	for rec, err := range r.All() {
		require.NoError(t, err)
		if rec.Type == trace.TypeEnd {
			endN = rec.Records
		}
	}
	newEnd := strings.Replace(end, `"records":`+strconv.Itoa(endN), `"records":`+strconv.Itoa(endN+1), 1)
	data := strings.Join(lines[:len(lines)-2], "") + extra + newEnd
	r, err = trace.NewReader(strings.NewReader(data))
	require.NoError(t, err)
	var types []string
	for rec, err := range r.All() {
		require.NoError(t, err)
		types = append(types, rec.Type)
	}
	require.Contains(t, types, "power")
	_, err = r.Next()
	require.Equal(t, io.EOF, err)
}

// FuzzReader feeds arbitrary bytes to the reader: it must return records or an error naming a
// line, never panic, and never loop.
func FuzzReader(f *testing.F) {
	// Small seeds (a few records of the fixture): the engine minimises every new input, and the
	// whole 44 KB fixture made it spend its time minimising.
	b, err := os.ReadFile("testdata/session.trace.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	f.Add([]byte(strings.Join(lines[:6], "") + `{"type":"end","t":"2026-11-25T16:35:42Z","records":5}` + "\n"))
	f.Add([]byte(strings.Join(lines[:4], "")))
	f.Add([]byte(`{"format":"fidolab-trace","version":1,"created":"2026-11-25T16:35:42Z"}` + "\n" +
		`{"type":"end","t":"2026-11-25T16:35:42Z"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := trace.NewReader(bytes.NewReader(data))
		if err != nil {
			var fe *trace.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("header error is not a FormatError: %v", err)
			}
			return
		}
		for i := 0; ; i++ {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var fe *trace.FormatError
				if !errors.As(err, &fe) || fe.Line < 1 {
					t.Fatalf("error without a line: %v", err)
				}
				return
			}
			if rec == nil || i > len(data) {
				t.Fatal("reader returned no record or more records than bytes")
			}
		}
	})
}
