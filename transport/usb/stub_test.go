//go:build !gousb

package usb

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWithoutTagNamesTheTag(t *testing.T) {
	t.Parallel()
	require.False(t, Available)
	_, err := Open(Spec{Vendor: 0x1050, Product: 0x0407})
	require.ErrorIs(t, err, ErrNotBuilt)
	require.ErrorContains(t, err, "-tags gousb")
	require.ErrorContains(t, err, "libusb-1.0-0-dev")
	_, err = List()
	require.ErrorIs(t, err, ErrNotBuilt)
}
