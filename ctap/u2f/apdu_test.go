package u2f

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseAPDUCases(t *testing.T) {
	t.Parallel()
	hdr := []byte{0x00, 0x03, 0x11, 0x22}
	d5, d300 := seq(5), seq(300)
	tests := []struct {
		name string
		in   []byte
		want Command
	}{
		{"case 1", hdr, Command{INS: 3, P1: 0x11, P2: 0x22}},
		{"case 2S", cat(hdr, []byte{0x10}), Command{INS: 3, P1: 0x11, P2: 0x22, Ne: 16}},
		{"case 2S Le 0 is 256", cat(hdr, []byte{0x00}), Command{INS: 3, P1: 0x11, P2: 0x22, Ne: 256}},
		{"case 3S", cat(hdr, []byte{5}, d5), Command{INS: 3, P1: 0x11, P2: 0x22, Data: d5}},
		{"case 4S", cat(hdr, []byte{5}, d5, []byte{0}), Command{INS: 3, P1: 0x11, P2: 0x22, Data: d5, Ne: 256}},
		{"case 3S max", cat(hdr, []byte{255}, seq(255)), Command{INS: 3, P1: 0x11, P2: 0x22, Data: seq(255)}},
		{"case 2E", cat(hdr, []byte{0, 0x01, 0x02}), Command{INS: 3, P1: 0x11, P2: 0x22, Ne: 0x102, Extended: true}},
		{"case 2E Le 0 is 65536", cat(hdr, []byte{0, 0, 0}), Command{INS: 3, P1: 0x11, P2: 0x22, Ne: 65536, Extended: true}},
		{"case 3E", cat(hdr, []byte{0, 0x01, 0x2c}, d300), Command{INS: 3, P1: 0x11, P2: 0x22, Data: d300, Extended: true}},
		{"case 3E small", cat(hdr, []byte{0, 0, 5}, d5), Command{INS: 3, P1: 0x11, P2: 0x22, Data: d5, Extended: true}},
		{"case 4E", cat(hdr, []byte{0, 0, 5}, d5, []byte{0, 0}), Command{INS: 3, P1: 0x11, P2: 0x22, Data: d5, Ne: 65536, Extended: true}},
		{"case 4E Le 1", cat(hdr, []byte{0, 0x01, 0x2c}, d300, []byte{0, 1}), Command{INS: 3, P1: 0x11, P2: 0x22, Data: d300, Ne: 1, Extended: true}},
		{"empty extended Lc then Le (libfido2)", cat(hdr, []byte{0, 0, 0, 0, 0}), Command{INS: 3, P1: 0x11, P2: 0x22, Ne: 65536, Extended: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAPDU(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			enc, err := got.Encode()
			require.NoError(t, err)
			if tc.name != "empty extended Lc then Le (libfido2)" {
				require.Equal(t, tc.in, enc)
			} else {
				require.Equal(t, cat(hdr, []byte{0, 0, 0}), enc, "re-encodes as plain case 2E")
			}
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		want StatusWord
	}{
		{"empty", nil, SWWrongLength},
		{"three bytes", []byte{0, 3, 0}, SWWrongLength},
		{"short Lc too big", []byte{0, 1, 0, 0, 5, 1, 2}, SWWrongLength},
		{"short Lc too small", []byte{0, 1, 0, 0, 1, 1, 2, 3}, SWWrongLength},
		{"extended two bytes", []byte{0, 3, 0, 0, 0, 0}, SWWrongLength},
		{"extended Lc too big", []byte{0, 1, 0, 0, 0, 0, 9, 1, 2, 3}, SWWrongLength},
		{"extended with one-byte Le", cat([]byte{0, 1, 0, 0, 0, 0, 2, 1, 2}, []byte{0}), SWWrongLength},
		{"empty extended Lc then one byte", []byte{0, 3, 0, 0, 0, 0, 0, 0}, SWWrongLength},
		{"CLA 0x80", []byte{0x80, 3, 0, 0}, SWClaNotSupported},
		{"CLA 0x01 short", []byte{0x01, 1, 0, 0, 0}, SWClaNotSupported},
		{"INS 0x00", []byte{0, 0, 0, 0}, SWInsNotSupported},
		{"INS 0x04", []byte{0, 4, 0, 0}, SWInsNotSupported},
		{"vendor INS 0x40", []byte{0, 0x40, 0, 0}, SWInsNotSupported},
		{"vendor INS 0xBF", []byte{0, 0xbf, 0, 0, 0, 0, 0}, SWInsNotSupported},
		{"INS 0xC0", []byte{0, 0xc0, 0, 0}, SWInsNotSupported},
		{"length checked before class", []byte{0x80, 3, 0, 0, 0, 0}, SWWrongLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseCommand(tc.in)
			require.Error(t, err)
			var sw StatusWord
			require.True(t, errors.As(err, &sw))
			require.Equal(t, tc.want, sw, "%v", err)
			var ue *Error
			require.ErrorAs(t, err, &ue)
		})
	}
}

func TestEncodeLimits(t *testing.T) {
	t.Parallel()
	bad := []Command{
		{Data: seq(256)},
		{Ne: 257},
		{Ne: -1},
		{Data: seq(65536), Extended: true},
		{Ne: 65537, Extended: true},
	}
	for i, c := range bad {
		_, err := c.Encode()
		require.Error(t, err, "case %d", i)
	}
	b, err := EncodeCommand(Command{INS: 1, Data: seq(256), Extended: true})
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 0, 0, 0, 1, 0}, b[:7])
}

func FuzzParseCommand(f *testing.F) {
	f.Add([]byte{0, 3, 0, 0})
	f.Add([]byte{0, 3, 0, 0, 0})
	f.Add([]byte{0, 3, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 3, 0, 0, 0, 0, 0, 0, 0})
	f.Add(cat([]byte{0, 1, 3, 0, 0, 0, 64}, seq(64), []byte{0, 0}))
	f.Add(cat([]byte{0, 2, 3, 0, 65 + 8}, seq(64), []byte{8}, seq(8), []byte{0}))
	f.Add(cat([]byte{0, 2, 7, 0, 0, 0, 65 + 8}, seq(64), []byte{8}, seq(8)))
	f.Add([]byte{0x80, 0x40, 0, 0, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			var sw StatusWord
			if !errors.As(err, &sw) || sw == SWNoError {
				t.Fatalf("rejection without a status word: %v", err)
			}
			return
		}
		if c.CLA != 0 || (c.INS != InsRegister && c.INS != InsAuthenticate && c.INS != InsVersion) {
			t.Fatalf("accepted CLA %x INS %x", c.CLA, c.INS)
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("accepted command does not encode: %v", err)
		}
		again, err := ParseCommand(enc)
		if err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if !commandsEqual(c, again) {
			t.Fatalf("re-encoding changed the command: %+v vs %+v", c, again)
		}
		// Re-encoding is byte-exact except for the one non-ISO form ParseAPDU tolerates.
		libfido2Empty := len(b) == 9 && b[4] == 0 && b[5] == 0 && b[6] == 0
		if !bytes.Equal(enc, b) && !libfido2Empty {
			t.Fatalf("re-encoding %x differs from input %x", enc, b)
		}
		// Typed requests that parse rebuild the same data.
		switch c.INS {
		case InsRegister:
			if r, err := ParseRegisterRequest(c); err == nil && !bytes.Equal(r.Command().Data, c.Data) {
				t.Fatal("register request does not rebuild its data")
			}
		case InsAuthenticate:
			if r, err := ParseAuthenticateRequest(c); err == nil {
				rc, err := r.Command()
				if err != nil || !bytes.Equal(rc.Data, c.Data) || rc.P1 != c.P1 {
					t.Fatalf("authenticate request does not rebuild its data: %v", err)
				}
			}
		case InsVersion:
			if err := ParseVersionRequest(c); (err == nil) != (len(c.Data) == 0) {
				t.Fatalf("version request data check wrong: %v", err)
			}
		}
	})
}

func commandsEqual(a, b Command) bool {
	return a.CLA == b.CLA && a.INS == b.INS && a.P1 == b.P1 && a.P2 == b.P2 &&
		bytes.Equal(a.Data, b.Data) && a.Ne == b.Ne && a.Extended == b.Extended
}
