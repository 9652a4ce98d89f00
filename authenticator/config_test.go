package authenticator

import (
	"bytes"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// configReq builds an authenticatorConfig request, authenticated with token (protocol v) when
// token is non-nil. params may be nil, a value to encode, or raw CBOR bytes.
func configReq(t testing.TB, v int, token []byte, sub uint64, params any) *ctap.ConfigRequest {
	t.Helper()
	req := &ctap.ConfigRequest{SubCommand: ctap.Uint(sub)}
	switch p := params.(type) {
	case nil:
	case []byte:
		req.SubCommandParams = p
	default:
		raw, err := ctap.Marshal(p)
		require.NoError(t, err)
		req.SubCommandParams = raw
	}
	if token != nil {
		msg := append(append(bytes.Repeat([]byte{0xff}, 32), 0x0d, byte(sub)), req.SubCommandParams...)
		req.PinUvAuthProtocol = ctap.Uint(uint64(v))
		req.PinUvAuthParam = authParam(t, v, token, msg)
	}
	return req
}

// config sends authenticatorConfig and returns the status.
func (k *testKey) config(v int, token []byte, sub uint64, params any) ctap.Status {
	k.t.Helper()
	st, _ := k.call(ctap.CmdConfig, configReq(k.t, v, token, sub, params))
	return st
}

func (k *testKey) configSettings() store.Settings {
	k.t.Helper()
	s, err := k.Store().Settings()
	require.NoError(k.t, err)
	return s
}

func TestConfigWithoutPIN(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.config(2, nil, ctap.ConfigToggleAlwaysUV, nil))
	require.True(t, k.configSettings().AlwaysUV)
	gi := k.info()
	alwaysUV, _ := gi.Option("alwaysUv")
	require.True(t, alwaysUV)

	// alwaysUv on and nothing protects the key: only toggleAlwaysUv runs without a token.
	require.Equal(t, ctap.ErrPUATRequired, k.config(2, nil, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(6)}))
	require.Equal(t, ctap.ErrPUATRequired, k.config(2, nil, ctap.ConfigEnableEnterpriseAttestation, nil))
	require.Equal(t, ctap.StatusOK, k.config(2, nil, ctap.ConfigToggleAlwaysUV, nil))
	require.False(t, k.configSettings().AlwaysUV)

	require.Equal(t, ctap.StatusOK, k.config(2, nil, ctap.ConfigEnableEnterpriseAttestation, nil))
	require.True(t, k.configSettings().EnterpriseAttestation)
	require.Equal(t, ctap.StatusOK, k.config(2, nil, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(6)}))
	require.Equal(t, 6, k.configSettings().MinPINLength)
	require.Equal(t, uint64(6), k.info().MinPINLength)
	require.Equal(t, ctap.ErrPINPolicyViolation, k.setPIN(2, "12345"))
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "123456"))
}

func TestConfigAuthentication(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		require.Equal(t, ctap.ErrPUATRequired, k.config(v, nil, ctap.ConfigToggleAlwaysUV, nil))

		noAcfg := k.mustToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINAuthInvalid, k.config(v, noAcfg, ctap.ConfigToggleAlwaysUV, nil))
		require.False(t, k.configSettings().AlwaysUV)

		tok := k.mustToken(v, "1234", ctap.PermAuthenticatorConfig, "")
		require.Equal(t, ctap.StatusOK, k.config(v, tok, ctap.ConfigToggleAlwaysUV, nil))
		require.True(t, k.configSettings().AlwaysUV)
		require.Equal(t, ctap.StatusOK, k.config(v, tok, ctap.ConfigToggleAlwaysUV, nil))
		require.False(t, k.configSettings().AlwaysUV)

		// The MAC covers the subcommand and its parameters as sent.
		req := configReq(t, v, tok, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(5)})
		tampered, err := ctap.Marshal(&ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(9)})
		require.NoError(t, err)
		req.SubCommandParams = tampered
		st, _ := k.call(ctap.CmdConfig, req)
		require.Equal(t, ctap.ErrPINAuthInvalid, st)
		req = configReq(t, v, tok, ctap.ConfigToggleAlwaysUV, nil)
		req.SubCommand = ctap.Uint(ctap.ConfigEnableEnterpriseAttestation)
		st, _ = k.call(ctap.CmdConfig, req)
		require.Equal(t, ctap.ErrPINAuthInvalid, st)
		require.False(t, k.configSettings().EnterpriseAttestation)

		req = configReq(t, v, tok, ctap.ConfigToggleAlwaysUV, nil)
		req.PinUvAuthProtocol = nil
		st, _ = k.call(ctap.CmdConfig, req)
		require.Equal(t, ctap.ErrMissingParameter, st)
		req = configReq(t, v, tok, ctap.ConfigToggleAlwaysUV, nil)
		req.PinUvAuthProtocol = ctap.Uint(3)
		st, _ = k.call(ctap.CmdConfig, req)
		require.Equal(t, ctap.ErrInvalidParameter, st)

		require.Equal(t, ctap.StatusOK, k.config(v, tok, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(5), MinPINLengthRPIDs: []string{"a.example"}}))
		s := k.configSettings()
		require.Equal(t, 5, s.MinPINLength)
		require.Equal(t, []string{"a.example"}, s.MinPINLengthRPIDs)
	}
}

func TestConfigSubcommandErrors(t *testing.T) {
	t.Parallel()
	noEP := func(p *persona.Persona) { p.EnterpriseAtt = false }
	cases := []struct {
		name   string
		mods   []func(*persona.Persona)
		pin    bool
		sub    uint64
		params any
		want   ctap.Status
	}{
		{"vendorPrototype", nil, true, ctap.ConfigVendorPrototype, nil, ctap.ErrInvalidSubcommand},
		{"unknown", nil, true, 0x10, nil, ctap.ErrInvalidSubcommand},
		{"huge", nil, false, 1 << 20, nil, ctap.ErrInvalidSubcommand},
		{"ep without the feature", []func(*persona.Persona){noEP}, true, ctap.ConfigEnableEnterpriseAttestation, nil, ctap.ErrInvalidSubcommand},
		{"min length decreases", nil, true, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(3)}, ctap.ErrPINPolicyViolation},
		{"min length above 63", nil, true, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(64)}, ctap.ErrPINPolicyViolation},
		{"too many RP IDs", nil, true, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{MinPINLengthRPIDs: []string{"a", "b", "c", "d", "e"}}, ctap.ErrPINPolicyViolation},
		{"RP IDs without the extension", []func(*persona.Persona){func(p *persona.Persona) { p.Extensions = []string{"credProtect"} }}, true, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{MinPINLengthRPIDs: []string{"a"}}, ctap.ErrPINPolicyViolation},
		{"empty RP ID", nil, true, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{MinPINLengthRPIDs: []string{""}}, ctap.ErrInvalidParameter},
		{"forceChangePin without PIN", nil, false, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{ForceChangePIN: ctap.Bool(true)}, ctap.ErrPINNotSet},
		{"no params", nil, true, ctap.ConfigSetMinPINLength, nil, ctap.ErrMissingParameter},
		{"params not a map", nil, true, ctap.ConfigSetMinPINLength, []byte{0x01}, ctap.ErrCBORUnexpectedType},
		{"newMinPINLength a string", nil, true, ctap.ConfigSetMinPINLength, []byte{0xa1, 0x01, 0x61, 0x78}, ctap.ErrCBORUnexpectedType},
		{"same length ok", nil, true, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(4)}, ctap.StatusOK},
		{"four RP IDs ok", nil, true, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{MinPINLengthRPIDs: []string{"a", "b", "c", "d"}}, ctap.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default", c.mods...)
			var tok []byte
			if c.pin {
				require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
				tok = k.mustToken(2, "1234", ctap.PermAuthenticatorConfig, "")
			}
			before := k.configSettings()
			require.Equal(t, c.want, k.config(2, tok, c.sub, c.params))
			if c.want != ctap.StatusOK {
				require.Equal(t, before, k.configSettings(), "a refused command changes nothing")
				pin, err := k.Store().PIN()
				require.NoError(t, err)
				require.False(t, pin.ForceChange)
			}
		})
	}
}

func TestConfigRawErrors(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	for _, c := range []struct {
		name string
		body []byte
		want ctap.Status
	}{
		{"empty", nil, ctap.ErrMissingParameter},
		{"no subCommand", []byte{0xa1, 0x03, 0x02}, ctap.ErrMissingParameter},
		{"subCommand negative", []byte{0xa1, 0x01, 0x20}, ctap.ErrCBORUnexpectedType},
		{"not a map", []byte{0x80}, ctap.ErrCBORUnexpectedType},
		{"trailing bytes", []byte{0xa1, 0x01, 0x02, 0x00}, ctap.ErrInvalidCBOR},
	} {
		st, _ := k.call(ctap.CmdConfig, c.body)
		require.Equal(t, c.want, st, c.name)
	}
	require.False(t, k.configSettings().AlwaysUV)

	for _, name := range []string{"ctap20", "no-hmac-secret"} {
		p, err := persona.Builtin(name)
		require.NoError(t, err)
		if p.Config {
			continue
		}
		kk := newTestKey(t, name)
		st, _ := kk.call(ctap.CmdConfig, configReq(t, 1, nil, ctap.ConfigToggleAlwaysUV, nil))
		require.Equal(t, ctap.ErrInvalidCommand, st, name)
	}
}

func TestSetMinPINLengthForcesChange(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		params    *ctap.SetMinPINLengthParams
		wantForce bool
		wantMin   int
	}{
		{"longer than the PIN", &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(7)}, true, 7},
		{"as long as the PIN", &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(6)}, false, 6},
		{"forceChangePin", &ctap.SetMinPINLengthParams{ForceChangePIN: ctap.Bool(true)}, true, 4},
		{"forceChangePin false", &ctap.SetMinPINLengthParams{ForceChangePIN: ctap.Bool(false)}, false, 4},
		{"RP IDs only", &ctap.SetMinPINLengthParams{MinPINLengthRPIDs: []string{"x.example"}}, false, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			require.Equal(t, ctap.StatusOK, k.setPIN(1, "123456"))
			tok := k.mustToken(1, "123456", ctap.PermAuthenticatorConfig, "")
			require.Equal(t, ctap.StatusOK, k.config(1, tok, ctap.ConfigSetMinPINLength, c.params))
			pin, err := k.Store().PIN()
			require.NoError(t, err)
			require.Equal(t, c.wantForce, pin.ForceChange)
			min, err := k.effectiveMinPINLength()
			require.NoError(t, err)
			require.Equal(t, c.wantMin, min)
			st, _ := k.pinToken(1, "123456", ctap.PermMakeCredential, "example.com")
			if c.wantForce {
				require.Equal(t, ctap.ErrPINPolicyViolation, st)
			} else {
				require.Equal(t, ctap.StatusOK, st)
			}
		})
	}
}

func TestConfigProtectedByFingerprint(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	k.uvEnroll()
	require.Equal(t, ctap.ErrPUATRequired, k.config(2, nil, ctap.ConfigToggleAlwaysUV, nil), "an enrolled finger protects the key too")
	st, _ := k.uvToken(2, ctap.PermAuthenticatorConfig, "")
	require.Equal(t, ctap.ErrUnauthorizedPermission, st, "acfg stays behind the PIN")
	require.False(t, k.configSettings().AlwaysUV)
}
