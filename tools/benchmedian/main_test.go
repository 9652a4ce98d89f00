package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testdata/medians.tsv was written by the awk insertion sort .ci/bench used before this program,
// from the same raw output: the two agree to the last printed digit.
func TestGoldenMatchesTheAwkMedians(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(&out, []string{"testdata/raw.txt"}))
	want, err := os.ReadFile("testdata/medians.tsv")
	require.NoError(t, err)
	require.Equal(t, string(want), out.String())
}

func TestMedians(t *testing.T) {
	t.Parallel()
	const head = "goos: linux\ngoarch: amd64\npkg: example.com/a\ncpu: X\n"
	for _, tc := range []struct {
		name    string
		in      string
		want    string // write's output
		wantErr string
	}{
		{"odd count takes the middle", head +
			"BenchmarkA-2 10 30 ns/op\nBenchmarkA-2 10 10 ns/op\nBenchmarkA-2 10 20 ns/op\n",
			"BenchmarkA\tns/op\t20\n", ""},
		{"even count averages the middle two", head +
			"BenchmarkA-2 10 40 ns/op\nBenchmarkA-2 10 10 ns/op\nBenchmarkA-2 10 20 ns/op\nBenchmarkA-2 10 30 ns/op\n",
			"BenchmarkA\tns/op\t25\n", ""},
		{"one sample", head + "BenchmarkA 10 7 ns/op\n", "BenchmarkA\tns/op\t7\n", ""},
		{"units as printed, first-seen order, custom units", head +
			"BenchmarkB/sub-8 1 1500 ns/op 2.5 cpu-ns/op 64 B/op 1 allocs/op\n" +
			"BenchmarkA/x=1-8 1 2000000 ns/op\n",
			"BenchmarkB/sub\tns/op\t1500\nBenchmarkB/sub\tcpu-ns/op\t2.5\nBenchmarkB/sub\tB/op\t64\nBenchmarkB/sub\tallocs/op\t1\n" +
				"BenchmarkA/x=1\tns/op\t2e+06\n", ""},
		{"a name with a dash keeps it", head + "BenchmarkA/in-process-2 1 5 ns/op\n", "BenchmarkA/in-process\tns/op\t5\n", ""},
		{"noise and go test -v lines are skipped", head +
			"=== RUN   BenchmarkA\nBenchmarkA\nBenchmarkA-2 1 5 ns/op\nPASS\nok  \texample.com/a\t1.0s\n",
			"BenchmarkA\tns/op\t5\n", ""},
		{"six significant digits", head + "BenchmarkA 1 0.123456789 x/op\n", "BenchmarkA\tx/op\t0.123457\n", ""},
		{"no results", "PASS\n", "", "no benchmark results"},
		{"a broken line", head + "BenchmarkA-2 10 fast ns/op\n", "", "parsing measurement"},
		{"a missing unit", head + "BenchmarkA-2 10 5\n", "", "missing units"},
		{"one name in two packages", head + "BenchmarkA 1 5 ns/op\npkg: example.com/b\nBenchmarkA 1 6 ns/op\n",
			"", "two packages (example.com/a and example.com/b)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			meds, err := medians(input{name: "in.txt", r: strings.NewReader(tc.in)})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var out bytes.Buffer
			require.NoError(t, write(&out, meds))
			require.Equal(t, tc.want, out.String())
		})
	}
}

func TestSampleCounts(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/raw.txt")
	require.NoError(t, err)
	defer f.Close()
	meds, err := medians(input{name: "raw.txt", r: f})
	require.NoError(t, err)
	require.Len(t, meds, 37) // the lines of testdata/medians.tsv
	for _, m := range meds {
		require.Equal(t, 5, m.Values, "%s %s", m.Name, m.Unit) // -count 5
		require.NotContains(t, m.Name, "-2")
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	require.ErrorContains(t, run(&bytes.Buffer{}, []string{"testdata/absent.txt"}), "absent.txt")
	require.ErrorContains(t, run(&bytes.Buffer{}, []string{os.DevNull}), "no benchmark results")
}
