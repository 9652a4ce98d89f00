package peers

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRows(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		want    []Row
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"rows and noise", "starting\n{\"client\":\"c\",\"operation\":\"op\",\"persona\":\"p\",\"result\":\"pass\",\"detail\":\"d\"}\n\n" +
			"{\"client\":\"c\",\"operation\":\"op2\",\"persona\":\"p\",\"result\":\"unsupported\",\"detail\":\"\"}\n",
			[]Row{{"c", "op", "p", "pass", "d"}, {"c", "op2", "p", "unsupported", ""}}, ""},
		{"bad result", `{"client":"c","operation":"op","persona":"p","result":"ok","detail":""}`, nil, "unknown result"},
		{"unknown field", `{"client":"c","operation":"op","persona":"p","result":"pass","extra":1}`, nil, "unknown field"},
		{"no operation", `{"client":"c","persona":"p","result":"pass"}`, nil, "without operation"},
		{"broken json", `{"client":`, nil, "line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRows(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseRows(f *testing.F) {
	f.Add([]byte(`{"client":"c","operation":"op","persona":"p","result":"pass","detail":"d"}`))
	f.Add([]byte("noise\n{\"operation\":\"x\",\"result\":\"fail\"}\n{"))
	f.Add([]byte(`{"operation":"x","result":"unsupported","detail":"\u0000"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := ParseRows(bytes.NewReader(b))
		for _, r := range rows {
			// Whatever came back was validated, error or not.
			require.Contains(t, []string{ResultPass, ResultFail, ResultUnsupported}, r.Result)
			require.NotEmpty(t, r.Operation)
		}
		if err == nil {
			require.LessOrEqual(t, len(rows), bytes.Count(b, []byte("{")))
		}
	})
}

func TestFailed(t *testing.T) {
	t.Parallel()
	rows := []Row{{Operation: "a", Result: ResultPass}, {Operation: "b", Result: ResultFail}, {Operation: "c", Result: ResultUnsupported}}
	require.Equal(t, []Row{rows[1]}, Failed(rows))
	require.Empty(t, Failed(rows[:1]))
}

func TestWriteCompatibility(t *testing.T) {
	t.Parallel()
	rows := []Row{
		{"libfido2", "getInfo", "default", ResultPass, ""},
		{"libfido2", "getInfo", "u2f", ResultUnsupported, "no CTAP2"},
		{"libfido2", "reset|x", "default", ResultFail, "boom"},
		{"python-fido2", "ping", "default", ResultPass, ""},
	}
	var b bytes.Buffer
	require.NoError(t, WriteCompatibility(&b, rows))
	doc := b.String()
	require.Contains(t, doc, "| operation | default | u2f |")
	require.Contains(t, doc, "| getInfo | pass | unsupported |")
	require.Contains(t, doc, `| reset\|x | **FAIL** |  |`)
	require.Contains(t, doc, "## python-fido2")
	require.Contains(t, doc, "- u2f / getInfo: unsupported — no CTAP2")
	require.Contains(t, doc, "## Where clients and the spec disagree")
	var again bytes.Buffer
	require.NoError(t, WriteCompatibility(&again, rows))
	require.Equal(t, doc, again.String(), "the report must be reproducible")
}
