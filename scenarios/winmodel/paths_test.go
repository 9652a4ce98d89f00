package winmodel

import (
	"context"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/stretchr/testify/require"
)

// TestProbesRunOnTheirPathOnly: a probe added to one path sends its extra request there, sees the
// real request, and leaves the other paths alone; a probe's outcome ends the operation.
func TestProbesRunOnTheirPathOnly(t *testing.T) {
	t.Parallel()
	var seen []string
	preflight := Probe{
		Name: "pre-flight getAssertion", Path: PathBrowserSignIn, Stage: BeforeRequest, Source: "test",
		Run: func(ctx context.Context, p ProbeContext) (*result.Outcome, error) {
			req := *p.Request.(*ctap.GetAssertionRequest)
			req.Options = &ctap.Options{UP: ctap.Bool(false)}
			req.PinUvAuthParam, req.PinUvAuthProtocol = nil, nil
			_, err := p.Client.GetAssertion(ctx, &req)
			seen = append(seen, "preflight")
			p.Note("pre-flight answered %v", err)
			return nil, nil
		},
	}
	hang := Probe{
		Name: "touch probe", Path: PathLogon, Stage: AfterGetInfo, Source: "test",
		Run: func(context.Context, ProbeContext) (*result.Outcome, error) {
			o := fail(host.CodeKeyError, "the prompt hangs")
			return &o, nil
		},
	}
	k := newKey(t, "")
	h, err := New(WithProbes(preflight, hang)).NewHost(testCtx(t), goodConfig(), k)
	require.NoError(t, err)
	mh := h.(*Host)
	register(t, mh, "alice@contoso.com")
	require.Empty(t, seen, "registration is another path")

	m := k.mark()
	out, notes := do(t, mh, host.Action{Name: host.ActWebAuthnSignIn, PIN: "1234"})
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)
	require.Equal(t, []string{"preflight"}, seen)
	cmds := strings.Join(k.commands(m), " ")
	require.Equal(t, 2, strings.Count(cmds, "authenticatorGetAssertion"), cmds)
	require.Contains(t, strings.Join(notes, "\n"), "probe pre-flight getAssertion (test)")

	m = k.mark()
	out, _ = do(t, mh, signIn("1234"))
	require.Equal(t, "error key-error", out.String())
	require.NotContains(t, strings.Join(k.commands(m), " "), "authenticatorGetAssertion", "the probe ended the logon")
}
