package usb

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Spec
		err  string
	}{
		{in: "1050:0407", want: Spec{Vendor: 0x1050, Product: 0x0407}},
		{in: "0x1209:0xF1D0:FL-0001", want: Spec{Vendor: 0x1209, Product: 0xf1d0, Serial: "FL-0001"}},
		{in: "1209:f1d0:a:b", want: Spec{Vendor: 0x1209, Product: 0xf1d0, Serial: "a:b"}},
		{in: "1050", err: "want VID:PID"},
		{in: "10500:0407", err: "not a 16-bit hex ID"},
		{in: "zz:0407", err: "not a 16-bit hex ID"},
		{in: ":0407", err: "not a 16-bit hex ID"},
		{in: "1050:0407:", err: "empty serial"},
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.in)
		if tt.err != "" {
			require.ErrorContains(t, err, tt.err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
		again, err := ParseSpec(got.String())
		require.NoError(t, err)
		require.Equal(t, got, again, "String round-trips")
	}
}

// FuzzParseSpec: a --key usb:… value never panics, and what parses prints back to itself.
func FuzzParseSpec(f *testing.F) {
	f.Add("1050:0407")
	f.Add("0x1209:0xf1d0:serial")
	f.Add(":::")
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		again, err := ParseSpec(sp.String())
		if err != nil || again != sp {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, sp, sp.String(), again, err)
		}
	})
}
