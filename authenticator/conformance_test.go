package authenticator

import (
	"testing"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// TestGetAssertionConformance holds getAssertion cases found by reading CTAP 2.1 §6.2.2 step by
// step; each row names the step it checks.
func TestGetAssertionConformance(t *testing.T) {
	t.Parallel()
	alwaysUV := func(k *testKey) {
		s, err := k.Store().Settings()
		require.NoError(k.t, err)
		s.AlwaysUV = true
		require.NoError(k.t, k.Store().PutSettings(s))
	}
	finger := func(k *testKey) {
		require.NoError(k.t, k.Store().PutFingerprint(store.Fingerprint{TemplateID: []byte{1}}))
	}
	cases := []struct {
		name      string
		setup     func(k *testKey)
		req       func(r *ctap.GetAssertionRequest)
		want      ctap.Status
		wantFlags byte // checked when want is CTAP2_OK
	}{
		{
			name:  "step 5.1: alwaysUv on an unprotected key answers PUAT_REQUIRED even to a pinUvAuthParam",
			setup: alwaysUV,
			req: func(r *ctap.GetAssertionRequest) {
				r.PinUvAuthParam, r.PinUvAuthProtocol = make([]byte, 32), ctap.Uint(2)
			},
			want: ctap.ErrPUATRequired,
		},
		{
			name:  "step 5.2: alwaysUv with a PIN set goes on to verify the pinUvAuthParam",
			setup: func(k *testKey) { alwaysUV(k); require.Equal(k.t, ctap.StatusOK, k.setPIN(2, "1234")) },
			req: func(r *ctap.GetAssertionRequest) {
				r.PinUvAuthParam, r.PinUvAuthProtocol = make([]byte, 32), ctap.Uint(2)
			},
			want: ctap.ErrPINAuthInvalid,
		},
		{
			name:  "step 8: built-in UV sets the UP bit even when up is false",
			setup: finger,
			req: func(r *ctap.GetAssertionRequest) {
				r.Options = &ctap.Options{UP: ctap.Bool(false), UV: ctap.Bool(true)}
			},
			want:      ctap.StatusOK,
			wantFlags: ctap.FlagUP | ctap.FlagUV,
		},
		{
			name: "step 6.2.3: three misses since power-up, retries left, no PIN → OPERATION_DENIED",
			setup: func(k *testKey) {
				finger(k)
				k.user.Set(user.Fixed(user.No))
				for range 2 {
					st, _ := k.call(ctap.CmdGetAssertion, &ctap.GetAssertionRequest{RPID: "example.com", ClientDataHash: cdh(), Options: &ctap.Options{UV: ctap.Bool(true)}})
					require.Equal(k.t, ctap.ErrOperationDenied, st)
				}
			},
			req:  func(r *ctap.GetAssertionRequest) { r.Options = &ctap.Options{UV: ctap.Bool(true)} },
			want: ctap.ErrOperationDenied,
		},
		{
			name: "step 6.2.3: uvRetries exhausted, no PIN → PIN_BLOCKED",
			setup: func(k *testKey) {
				finger(k)
				k.mu.Lock()
				require.NoError(k.t, k.storeUVRetries(1))
				k.mu.Unlock()
				k.user.Set(user.Fixed(user.No))
			},
			req:  func(r *ctap.GetAssertionRequest) { r.Options = &ctap.Options{UV: ctap.Bool(true)} },
			want: ctap.ErrPINBlocked,
		},
		{
			name:      "step 9 skipped: up false without UV leaves UP clear",
			req:       func(r *ctap.GetAssertionRequest) { r.Options = &ctap.Options{UP: ctap.Bool(false)} },
			want:      ctap.StatusOK,
			wantFlags: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			c := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
			if tc.setup != nil {
				tc.setup(k)
			}
			req := gaReq("example.com", c.id)
			tc.req(req)
			if tc.want != ctap.StatusOK {
				st, _ := k.call(ctap.CmdGetAssertion, req)
				require.Equal(t, tc.want, st)
				return
			}
			_, ad := k.coreAssert(req, &c.pub)
			require.Equal(t, tc.wantFlags, ad.Flags)
		})
	}
}
