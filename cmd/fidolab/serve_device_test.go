package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The device transports are proven in QEMU guests (transport/uhid and transport/gadget TestVM…);
// here: the flags reach them and their failures are clear, with the right exit codes.
func TestServeDeviceTransportErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--transport", "bogus"}, 2, "want one of .*gadget.*uhid"},
		{[]string{"--transport", "uhid", "--uhid", filepath.Join(dir, "uhid")}, 1, "modprobe uhid"},
		{[]string{"--transport", "gadget", "--configfs", dir}, 1, "no USB device controller|libcomposite"},
		{[]string{"--transport", "gadget", "--gadget-name", "../x"}, 1, "not a plain directory name"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"serve"}, tc.args...), &out, &errb)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, errb.String())
		require.Regexp(t, tc.want, errb.String(), tc.args)
	}
}
