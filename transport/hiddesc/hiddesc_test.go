package hiddesc

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// golden reads a descriptor from testdata: hex bytes, '#' comments.
func golden(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var hx strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		hx.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(hx.String())
	require.NoError(t, err)
	return b
}

func TestParseGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file       string
		fido       bool
		reportIDs  bool
		report     FIDOReport
		page, use  uint16
		collection int // index of the collection checked against page/use
		inBytes    int // input report size of that collection (ID 0 unless reportIDs)
	}{
		{file: "fido.hex", fido: true, report: FIDOReport{ID: 0, InputSize: 64, OutputSize: 64},
			page: 0xF1D0, use: 1, inBytes: 64},
		{file: "keyboard.hex", page: 0x01, use: 0x06, inBytes: 8},
		{file: "mouse.hex", page: 0x01, use: 0x02, inBytes: 3},
		{file: "composite-reportid.hex", fido: true, reportIDs: true,
			report: FIDOReport{ID: 2, InputSize: 64, OutputSize: 64}, page: 0xF1D0, use: 1, collection: 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			d, err := Parse(golden(t, tt.file))
			require.NoError(t, err)
			require.Equal(t, tt.reportIDs, d.ReportIDs)
			c := d.Collections[tt.collection]
			require.Equal(t, tt.page, c.UsagePage)
			require.Equal(t, tt.use, c.Usage)
			if tt.inBytes > 0 {
				require.Equal(t, tt.inBytes, c.ReportSize(Input, 0))
			}
			rep, err := d.FIDOReports()
			if !tt.fido {
				require.ErrorIs(t, err, ErrNotFIDO)
				require.Nil(t, d.FIDO())
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.report, rep)
		})
	}
}

func TestParseKeyboardOutputReport(t *testing.T) {
	t.Parallel()
	d, err := Parse(golden(t, "keyboard.hex"))
	require.NoError(t, err)
	require.Len(t, d.Collections, 1)
	require.Equal(t, 1, d.Collections[0].ReportSize(Output, 0), "5 LED bits and 3 bits of padding")
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	fido := golden(t, "fido.hex")
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated item", []byte{0x06, 0xd0}, "needs 2 data bytes"},
		{"truncated long item", []byte{0xfe, 0x05}, "truncated long item"},
		{"long item data", []byte{0xfe, 0x05, 0x00, 0x01}, "truncated long item data"},
		{"unclosed collection", fido[:len(fido)-1], "not closed"},
		{"end without collection", []byte{0xc0}, "End Collection without Collection"},
		{"pop without push", []byte{0xb4}, "Pop without Push"},
		{"field outside collection", []byte{0x75, 0x08, 0x95, 0x40, 0x81, 0x02}, "outside any collection"},
		{"report id 0", []byte{0x85, 0x00}, "out of 1..255"},
		{"huge report", []byte{0xa1, 0x01, 0x77, 0xff, 0xff, 0xff, 0xff, 0x97, 0xff, 0xff, 0xff, 0xff, 0x81, 0x02, 0xc0}, "larger than"},
		{"too deep", append(repeat([]byte{0xa1, 0x00}, maxDepth+1), repeat([]byte{0xc0}, maxDepth+1)...), "nested deeper"},
		{"push overflow", repeat([]byte{0xa4}, maxPushDepth+1), "nested Push"},
		{"too large", make([]byte, MaxSize+1), "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.in)
			require.ErrorContains(t, err, tt.want)
		})
	}
	var se *SyntaxError
	_, err := Parse([]byte{0x06, 0xd0, 0xf1, 0x09})
	require.True(t, errors.As(err, &se))
	require.Equal(t, 3, se.Offset)
}

func TestParseSkipsLongAndReservedItems(t *testing.T) {
	t.Parallel()
	fido := golden(t, "fido.hex")
	// A long item (vendor data) and a reserved-type item before the descriptor change nothing.
	in := append([]byte{0xfe, 0x02, 0x10, 0xaa, 0xbb, 0x0c}, fido...)
	d, err := Parse(in)
	require.NoError(t, err)
	rep, err := d.FIDOReports()
	require.NoError(t, err)
	require.Equal(t, 64, rep.InputSize)
}

func TestFIDOWithoutOutputReport(t *testing.T) {
	t.Parallel()
	// Usage page F1D0 usage 1, an input report but no output report: CTAPHID cannot run.
	in := []byte{0x06, 0xd0, 0xf1, 0x09, 0x01, 0xa1, 0x01, 0x75, 0x08, 0x95, 0x40, 0x81, 0x02, 0xc0}
	d, err := Parse(in)
	require.NoError(t, err)
	require.NotNil(t, d.FIDO())
	_, err = d.FIDOReports()
	require.ErrorContains(t, err, "no input and output report")
}

func TestFIDOUsageInNonApplicationCollection(t *testing.T) {
	t.Parallel()
	fido := golden(t, "fido.hex")
	phys := append([]byte(nil), fido...)
	phys[6] = 0x00 // a1 00: physical collection, not application
	d, err := Parse(phys)
	require.NoError(t, err)
	require.Nil(t, d.FIDO())
}

func repeat(b []byte, n int) []byte {
	var out []byte
	for range n {
		out = append(out, b...)
	}
	return out
}

// FuzzParse: no descriptor panics the parser, and whatever parses has sane report sizes.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"fido.hex", "keyboard.hex", "mouse.hex", "composite-reportid.hex"} {
		f.Add(golden(f, name))
	}
	f.Add([]byte{0xfe, 0xff, 0x00})
	f.Add([]byte{0xa4, 0xb4, 0xb4})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		for _, c := range d.Collections {
			for k, bits := range c.Bits {
				if bits < 0 || bits > maxReportBits {
					t.Fatalf("%v: %d bits", k, bits)
				}
			}
		}
		if rep, err := d.FIDOReports(); err == nil && (rep.InputSize == 0 || rep.OutputSize == 0) {
			t.Fatalf("FIDO report without size: %+v", rep)
		}
	})
}
