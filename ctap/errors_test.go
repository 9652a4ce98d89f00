package ctap

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStatusHelpers(t *testing.T) {
	t.Parallel()
	require.Equal(t, StatusOK, StatusOf(nil))
	require.Equal(t, ErrOther, StatusOf(errors.New("plain")))
	require.Equal(t, ErrPINInvalid, StatusOf(Errorf(ErrPINInvalid, "wrong")))
	require.True(t, errors.Is(Errorf(ErrPINInvalid, "wrong"), ErrPINInvalid))
	for _, in := range []string{"CTAP2_ERR_PIN_INVALID", "err_pin_invalid", "0x31", "49"} {
		s, err := ParseStatus(in)
		require.NoError(t, err, in)
		require.Equal(t, ErrPINInvalid, s, in)
	}
	_, err := ParseStatus("ERR_WHATEVER")
	require.Error(t, err)
	require.Equal(t, "CTAP2_ERR_PIN_INVALID", ErrPINInvalid.String())
	require.Equal(t, "CTAP_STATUS_0x99", Status(0x99).String())
}
