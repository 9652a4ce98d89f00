package winmodel

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite docs/windows-model.md from the rule table")

func cfgOf(version string, join host.Join, enable host.Enablement, mod ...func(*host.Config)) host.Config {
	v, err := host.ParseVersion(version)
	if err != nil {
		panic(err) // test table constant
	}
	c := host.Config{Version: v, Join: join, Enable: enable, Online: true}
	for _, m := range mod {
		m(&c)
	}
	return c
}

func sharedPC(c *host.Config)    { c.SharedPC = true }
func provisioned(c *host.Config) { c.ProvisionedBeforePolicy = true }

func TestGates(t *testing.T) {
	t.Parallel()
	const (
		E, H, O, W = host.JoinEntra, host.JoinHybrid, host.JoinOnPrem, host.JoinWorkgroup
		OMA, WHfB  = host.EnableIntuneOMA, host.EnableIntuneWHfB
		PPKG, GPO  = host.EnablePPKG, host.EnableGPO
		None       = host.EnableNone
		signIn     = host.ActLockScreenSignIn
		unlock     = host.ActUnlock
	)
	redir := func(on string) host.Action {
		return host.Action{Name: host.ActRDPSignIn, Args: map[string]string{"redirection": on}}
	}
	act := func(name string) host.Action { return host.Action{Name: name} }
	remote := func(via, on string) host.Action {
		return host.Action{Name: host.ActRemoteSignIn, Args: map[string]string{"via": via, "redirection": on}}
	}
	for _, tc := range []struct {
		name     string
		cfg      host.Config
		action   host.Action
		wantRule string // "" = not gated
	}{
		{"webauthn 1809", cfgOf("10-1809", E, OMA), act(host.ActRegister), "webauthn-version"},
		{"webauthn 1903", cfgOf("10-1903", E, OMA), act(host.ActRegister), ""},
		{"webauthn sign-in 1809", cfgOf("10-1809", W, None), act(host.ActWebAuthnSignIn), "webauthn-version"},
		{"webauthn sign-in 1903 workgroup", cfgOf("10-1903", W, None), act(host.ActWebAuthnSignIn), ""},
		{"entra sign-in 1903", cfgOf("10-1903", E, OMA), act(signIn), "entra-joined-version"},
		{"entra sign-in 1909", cfgOf("10-1909", E, OMA), act(signIn), ""},
		{"entra sign-in 1809", cfgOf("10-1809", E, OMA), act(signIn), "entra-joined-version"},
		{"hybrid sign-in 1909", cfgOf("10-1909", H, OMA), act(signIn), "hybrid-joined-version"},
		{"hybrid sign-in 2004", cfgOf("10-2004", H, OMA), act(signIn), ""},
		{"unlock 1809 entra (l.47 folded into the join line)", cfgOf("10-1809", E, OMA), act(unlock), "entra-joined-version"},
		{"unlock 1809 hybrid", cfgOf("10-1809", H, GPO), act(unlock), "hybrid-joined-version"},
		{"unlock 1903 entra (join line)", cfgOf("10-1903", E, OMA), act(unlock), "entra-joined-version"},
		{"unlock 1909", cfgOf("10-1909", E, OMA), act(unlock), ""},
		{"manage 1809", cfgOf("10-1809", E, OMA), act(host.ActChangePIN), "manage-version"},
		{"manage 1903", cfgOf("10-1903", E, OMA), act(host.ActChangePIN), ""},
		{"reset 1809", cfgOf("10-1809", E, OMA), act(host.ActResetKey), "manage-version"},
		{"bio 1903", cfgOf("10-1903", E, OMA), act(host.ActEnrollFingerprint), ""},
		{"whfb provisioned", cfgOf("11-24H2", E, WHfB, provisioned), act(signIn), "intune-whfb-provisioned"},
		{"whfb fresh", cfgOf("11-24H2", E, WHfB), act(signIn), ""},
		{"oma provisioned", cfgOf("11-24H2", E, OMA, provisioned), act(signIn), ""},
		{"ppkg 1903 no shared pc", cfgOf("10-1903", E, PPKG), act(signIn), "ppkg-1903-sharedpc"},
		{"ppkg 1903 shared pc (then version)", cfgOf("10-1903", E, PPKG, sharedPC), act(signIn), "entra-joined-version"},
		{"ppkg 1909 no shared pc", cfgOf("10-1909", E, PPKG), act(signIn), ""},
		{"gpo entra", cfgOf("11-24H2", E, GPO), act(signIn), "gpo-hybrid-only"},
		{"gpo hybrid", cfgOf("11-24H2", H, GPO), act(signIn), ""},
		{"none", cfgOf("11-24H2", E, None), act(signIn), "enable-none"},
		{"none unlock", cfgOf("11-24H2", E, None), act(unlock), "enable-none"},
		{"onprem", cfgOf("11-24H2", O, GPO), act(signIn), "onprem-only"},
		{"workgroup", cfgOf("11-24H2", W, OMA), act(signIn), "workgroup"},
		{"workgroup register", cfgOf("11-24H2", W, None), act(host.ActRegister), ""},
		{"rdp no redirection", cfgOf("11-24H2", E, OMA), redir("false"), "remote-without-redirection"},
		{"rdp redirection 2004", cfgOf("10-2004", E, OMA), redir("true"), "rdp-redirection-version"},
		{"rdp redirection 20H2", cfgOf("10-20H2", E, OMA), redir("true"), ""},
		{"rdp redirection 11-22H2", cfgOf("11-22H2", E, OMA), redir("true"), ""},
		{"rdp at the logon screen", cfgOf("11-24H2", E, OMA), host.Action{Name: host.ActRDPSignIn, Args: map[string]string{"redirection": "true", "at": "logon"}}, "remote-logon-screen"},
		{"vdi redirection 2004", cfgOf("10-2004", E, OMA), remote("vdi", "true"), "rdp-redirection-version"},
		{"citrix redirection 1909", cfgOf("10-1909", E, OMA), remote("citrix", "true"), ""},
		{"citrix redirection 1809 (no WebAuthn)", cfgOf("10-1809", E, OMA), remote("citrix", "true"), "webauthn-version"},
		{"citrix no redirection", cfgOf("11-24H2", E, OMA), remote("citrix", "false"), "remote-without-redirection"},
		{"citrix at the logon screen", cfgOf("11-24H2", E, OMA), host.Action{Name: host.ActRemoteSignIn, Args: map[string]string{"via": "citrix", "redirection": "true", "at": "logon"}}, "remote-logon-screen"},
		{"authenticator passkey", cfgOf("11-24H2", E, OMA), act(host.ActAuthenticatorPasskeySignIn), "authenticator-passkey"},
		{"run as", cfgOf("11-24H2", E, OMA), act(host.ActRunAs), "run-as"},
		{"smime", cfgOf("11-24H2", E, OMA), act(host.ActSMIMESign), "smime"},
		{"server", cfgOf("11-24H2", E, OMA), act(host.ActServerSignIn), "server-sign-in"},
		{"go offline never gated", cfgOf("10-1809", O, None), act(host.ActGoOffline), ""},
	} {
		r := Gate(tc.cfg, tc.action)
		if tc.wantRule == "" {
			require.Nil(t, r, "%s: gated by %v", tc.name, r)
			continue
		}
		require.NotNil(t, r, tc.name)
		require.Equal(t, tc.wantRule, r.ID, tc.name)
	}
}

func TestRulesWellFormed(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, r := range Rules {
		require.False(t, seen[r.ID], "duplicate rule %s", r.ID)
		seen[r.ID] = true
		require.NotEmpty(t, r.Source, r.ID)
		require.NotEmpty(t, r.Actions, r.ID)
		require.NotNil(t, r.Match, r.ID)
		require.NotEmpty(t, r.Code, r.ID)
	}
}

func TestGatedHostAnswersNotOffered(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, cfgOf("10-1909", host.JoinHybrid, host.EnableGPO), k)
	m := k.mark()
	out, notes := do(t, h, host.Action{Name: host.ActLockScreenSignIn, PIN: "1234"})
	require.Equal(t, "not-offered version-unsupported", out.String())
	require.Contains(t, notes[0], "hybrid-joined-version")
	require.Empty(t, k.commands(m), "a gated action never reaches the key")
}

func TestDocUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "windows-model.md")
	want := Markdown()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./scenarios/winmodel -run TestDocUpToDate -update")
	require.Equal(t, want, string(got), "docs/windows-model.md is stale: run go test ./scenarios/winmodel -run TestDocUpToDate -update")
}

// TestSourcesResolve follows every citation of docs/windows-model.md into the files it cites (the
// seed document in the catalog's testdata, the rest in docs/reference): each "§ section" names a
// heading of the file cited before it, and each seed line number is a line of the seed document. Reference files are cited by section only, so editing them moves nothing.
func TestSourcesResolve(t *testing.T) {
	t.Parallel()
	files := map[string]string{"seed": "windows-fido2-sign-in.md"} // the seed is cited as "seed FILE"
	headings := map[string]map[string]bool{}
	lines := map[string]int{}
	for name, path := range map[string]string{
		"windows-fido2-sign-in.md":     "../catalog/testdata/windows-fido2-sign-in.md",
		"windows-host.md":              "../../docs/reference/windows-host.md",
		"windows-webauthn-eventlog.md": "../../docs/reference/windows-webauthn-eventlog.md",
	} {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		headings[name] = map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "#") {
				headings[name][strings.TrimSpace(strings.TrimLeft(l, "#"))] = true
			}
		}
		lines[name] = strings.Count(string(b), "\n")
	}
	doc := Markdown()
	require.NotRegexp(t, `reference\s+[\w.-]+\.md\s+l\.`, doc, "cite reference files by section, not line")
	cite := regexp.MustCompile(`(?:(seed|reference)\s+([\w.-]+\.md)\s+)?§ (.+?)(?:, l\.\d|[;)|]|\n|$)`)
	file, n := "", 0
	for _, m := range cite.FindAllStringSubmatch(doc, -1) {
		if m[2] != "" {
			file = m[2]
		}
		require.NotEmpty(t, file, "§ %s cites no file", m[3])
		require.Contains(t, headings, file, "cited file %s is not a reference", file)
		require.True(t, headings[file][strings.TrimSpace(m[3])], "%s has no section %q", file, m[3])
		n++
	}
	require.Greater(t, n, 30, "the citations were found")
	for _, m := range regexp.MustCompile(`l\.(\d+)(?:-(\d+))?`).FindAllStringSubmatch(doc, -1) {
		for _, s := range m[1:] {
			if s == "" {
				continue
			}
			l, err := strconv.Atoi(s)
			require.NoError(t, err)
			require.LessOrEqual(t, l, lines[files["seed"]], "seed line %d does not exist", l)
		}
	}
}

func FuzzGate(f *testing.F) {
	f.Add("10-1809", "entra", "gpo", "lock-screen-sign-in", "true", false)
	f.Add("11-24H2", "hybrid", "ppkg", "rdp-sign-in", "false", true)
	f.Fuzz(func(t *testing.T, version, join, enable, action, redir string, shared bool) {
		v, err := host.ParseVersion(version)
		if err != nil {
			v = host.Version{Name: version}
		}
		cfg := host.Config{Version: v, Join: host.Join(join), Enable: host.Enablement(enable), SharedPC: shared}
		a := host.Action{Name: action, Args: map[string]string{"redirection": redir}}
		r := Gate(cfg, a)
		if r == nil {
			return
		}
		// Invariants: a rule only gates actions it lists, and the verdict is deterministic.
		require.Contains(t, r.Actions, normalize(a).Name)
		require.Same(t, r, Gate(cfg, a))
	})
}
