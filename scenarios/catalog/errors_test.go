package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// minimal is a valid scenario; the error cases below break one thing in it at a time.
const minimal = `id: mine
title: a case
section: Requirements
doc: WebAuthN requires Windows 10 version 1903 or higher
supported: true
windows: ">=10-1903"
host:
  join: entra
  enable: intune-oma
key:
  pin: "1234"
  accounts: [alice]
steps:
  - action: lock-screen-sign-in
    pin: "1234"
    expect: {signed-in: alice}
  - action: webauthn-sign-in
    pin: "1234"
    expect:
      - when: {windows: "<10-1909"}
        outcome: {error: pin-invalid}
      - outcome: {signed-in: alice}
`

func TestParseMinimal(t *testing.T) {
	t.Parallel()
	sc, err := Parse([]byte(minimal), "m.yaml", nil)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	s := sc[0]
	require.Equal(t, "mine", s.ID)
	require.Len(t, s.Windows, 9)
	require.Equal(t, []string{"alice"}, s.Key.Accounts)
	require.Equal(t, "default", s.Key.Persona.Name)
	require.True(t, s.Host.Online, "online defaults to true")
	require.True(t, s.Host.OnPrem.Ready(), "a hybrid joined device's organisation did the on-premises steps unless a case says otherwise")
	o, ok := s.Steps[1].Expected(s.Windows[0])
	require.True(t, ok)
	require.Equal(t, "error pin-invalid", o.String())
	o, _ = s.Steps[1].Expected(s.Windows[1])
	require.Equal(t, "signed-in as alice", o.String())
	require.Equal(t, 17, s.Steps[1].Line)
}

func TestParseListAndDocuments(t *testing.T) {
	t.Parallel()
	indented := "  " + strings.ReplaceAll(strings.TrimSuffix(minimal, "\n"), "\n", "\n  ")
	list := "- " + strings.TrimPrefix(indented, "  ") + "\n" +
		"- " + strings.TrimPrefix(strings.Replace(indented, "id: mine", "id: second", 1), "  ") + "\n"
	sc, err := Parse([]byte(list), "list.yaml", nil)
	require.NoError(t, err)
	require.Len(t, sc, 2)
	require.Equal(t, "second", sc[1].ID)

	docs := minimal + "---\n" + strings.Replace(minimal, "id: mine", "id: third", 1)
	sc, err = Parse([]byte(docs), "docs.yaml", nil)
	require.NoError(t, err)
	require.Len(t, sc, 2)
}

// TestParseErrors breaks the minimal scenario one way at a time; each error must name the file,
// the line and the field.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown field", "supported: true", "supported: true\ncolour: blue", `m.yaml:6: colour: unknown field "colour"`},
		{"report without the tag", "steps:", "report:\n  source: https://github.com/a/b/issues/1\n  quote: q\n  windows: confirmed\n  trigger: t\n  sees: s\n  events: [1002]\n  match: [\"reset -> ok\"]\n" + "steps:", "m.yaml:14: report: only a scenario tagged field-report has a report"},
		{"report source not a URL", "supported: true", "supported: true\ntags: [field-report]\nreport:\n  source: vaultwarden-7437\n  quote: q\n  windows: confirmed\n  trigger: t\n  sees: s\n  events: [1002]\n  match: [\"reset -> ok\"]\n", "report.source: \"vaultwarden-7437\": cite the public report by its https:// address"},
		{"report windows", "supported: true", "supported: true\ntags: [field-report]\nreport:\n  source: https://github.com/a/b/issues/1\n  quote: q\n  windows: maybe\n  trigger: t\n  sees: s\n  events: [1002]\n  match: [\"reset -> ok\"]\n", "report.windows: \"maybe\": want confirmed or inferred"},
		{"report event", "supported: true", "supported: true\ntags: [field-report]\nreport:\n  source: https://github.com/a/b/issues/1\n  quote: q\n  windows: confirmed\n  trigger: t\n  sees: s\n  events: [4242]\n  match: [\"reset -> ok\"]\n", "report.events: \"4242\" is not a WebAuthN/Operational event ID"},
		{"report match", "supported: true", "supported: true\ntags: [field-report]\nreport:\n  source: https://github.com/a/b/issues/1\n  quote: q\n  windows: confirmed\n  trigger: t\n  sees: s\n  events: [1002]\n  match: [\"reset -> maybe\"]\n", "report.match: signature \"reset -> maybe\""},
		{"unknown probe", "enable: intune-oma", "enable: intune-oma\n  probes: [touch]", "host.probes: unknown probe \"touch\" (known: browser-pre-flight, silent-up0)"},
		{"unknown host field", "  enable: intune-oma", "  enable: intune-oma\n  domain: x", `m.yaml:10: host.domain: unknown field "domain"`},
		{"unknown step field", "    pin: \"1234\"\n    expect: {signed-in", "    pim: \"1234\"\n    expect: {signed-in", `m.yaml:15: steps[0].pim: unknown field "pim"`},
		{"missing id", "id: mine\n", "", `m.yaml:1: id: required field missing`},
		{"bad id", "id: mine", "id: Mine Case", `m.yaml:1: id: "Mine Case"`},
		{"missing doc", "doc: WebAuthN requires Windows 10 version 1903 or higher\n", "", `m.yaml:1: doc: required field missing`},
		{"unknown action", "action: webauthn-sign-in", "action: browser-sign-in", `m.yaml:17: steps[1].action: unknown action "browser-sign-in"`},
		{"unknown outcome code", "outcome: {error: pin-invalid}", "outcome: {error: pin-wrong}", `m.yaml:21: steps[1].expect[0].outcome: unknown outcome code "pin-wrong"`},
		{"unknown outcome code, short form", "expect: {signed-in: alice}\n  - action", "expect: {error: pin-wrong}\n  - action", `m.yaml:16: steps[0].expect: unknown outcome code "pin-wrong"`},
		{"unknown outcome kind", "expect: {signed-in: alice}\n  - action", "expect: {logged-in: alice}\n  - action", `m.yaml:16: steps[0].expect.logged-in: unknown outcome kind "logged-in"`},
		{"unknown version", `windows: ">=10-1903"`, `windows: ">=10-1703"`, `m.yaml:6: windows: unknown Windows version "10-1703"`},
		{"unknown version in when", `when: {windows: "<10-1909"}`, `when: {windows: "<10-1990"}`, `m.yaml:20: steps[1].expect[0].when.windows: unknown Windows version "10-1990"`},
		{"unknown join type", "join: entra", "join: azuread", `m.yaml:8: host.join: unknown join type "azuread"`},
		{"unknown enabling method", "enable: intune-oma", "enable: registry", `m.yaml:9: host.enable: unknown enabling method "registry"`},
		{"missing host", "host:\n  join: entra\n  enable: intune-oma\n", "", `m.yaml:1: host: required field missing`},
		{"not a boolean", "supported: true", "supported: maybe", `m.yaml:5: supported: want true or false`},
		{"uncovered version", "      - outcome: {signed-in: alice}\n", "", `m.yaml:17: steps[1].expect: no outcome for Windows 10-1909`},
		{"unknown account", "expect: {signed-in: alice}\n  - action", "expect: {signed-in: alcie}\n  - action", `m.yaml:14: steps[0].expect: account "alcie" is neither in key.accounts`},
		{"bad args", "    pin: \"1234\"\n    expect: {signed-in", "    args: {seconds: 3}\n    expect: {signed-in", `m.yaml:15: steps[0].args.seconds: action lock-screen-sign-in takes no argument "seconds"`},
		{"missing required arg", "action: webauthn-sign-in", "action: wait", `m.yaml:17: steps[1].args.seconds: action wait needs args.seconds`},
		{"accounts without pin", "  pin: \"1234\"\n  accounts", "  accounts", `m.yaml:11: key.pin: accounts are registered with user verification`},
		{"unknown persona", "key:\n", "key:\n  persona: yubikey-9\n", `m.yaml:11: key.persona: no built-in persona "yubikey-9"`},
		{"when not last", "      - outcome: {signed-in: alice}\n", "      - outcome: {signed-in: alice}\n      - outcome: done\n", `m.yaml:22: steps[1].expect[1]: only the last entry may omit when`},
		{"yaml syntax", "title: a case", "title: [a case", `m.yaml:1: did not find expected`},
		{"empty steps", "steps:\n", "steps: []\nx:\n", `m.yaml:13: steps: want a non-empty list`},
		{"field given twice", "title: a case", "title: a case\ntitle: again", `m.yaml:3: title: field given twice`},
		{"empty mapping", "host:\n  join: entra\n  enable: intune-oma\n", "host:\n", `m.yaml:7: host: want a mapping (key: value lines), got nothing`},
		{"empty text", "title: a case", "title:", `m.yaml:2: title: want a text value, got nothing`},
		{"list item not text", `windows: ">=10-1903"`, "tags: [a, [b]]\nwindows: \">=10-1903\"", `m.yaml:6: tags[1]: want a text value, got a list`},
		{"mapping where text belongs", "title: a case", "title: {a: case}", `m.yaml:2: title: want a text value, got a mapping`},
		{"step not a mapping", "steps:\n", "steps:\n  - 3\n", `m.yaml:14: steps[0]: want a mapping (key: value lines), got text "3"`},
		{"empty outcome", "expect: {signed-in: alice}\n  - action", "expect:\n  - action", "m.yaml:16: steps[0].expect: want `done` or a mapping like {signed-in: bob}"},
		{"alias", "  enable: intune-oma", "  enable: &e intune-oma\n  sharedPC: *e", `m.yaml:10: aliases (*e) are not supported`},
		{"unknown WHfB setting", "  enable: intune-oma", "  enable: intune-oma\n  helloForBusiness: on", `m.yaml:10: host.helloForBusiness: unknown setting "on" (known: not-configured, enabled, disabled)`},
		{"unknown on-premises field", "  enable: intune-oma", "  enable: intune-oma\n  onPremises: {kerberos: true}", `m.yaml:10: host.onPremises.kerberos: unknown field "kerberos"`},
		{"on-premises not a boolean", "  enable: intune-oma", "  enable: intune-oma\n  onPremises: {patchedDCs: mostly}", `m.yaml:10: host.onPremises.patchedDCs: want true or false`},
		{"remote via unknown", "action: webauthn-sign-in", "action: remote-sign-in\n    args: {via: vnc, redirection: \"true\"}", `m.yaml:18: steps[1].args.via: "vnc": want rdp, vdi, citrix`},
		{"remote needs via", "action: webauthn-sign-in", "action: remote-sign-in\n    args: {redirection: \"true\"}", `steps[1].args.via: action remote-sign-in needs args.via`},
		{"other site is Entra", "action: webauthn-sign-in", "action: register-other-site\n    account: bob\n    args: {rp: login.microsoft.com}", `login.microsoft.com is Entra's own relying party: use register`},
		{"other site not a domain", "action: webauthn-sign-in", "action: register-other-site\n    account: bob\n    args: {rp: \"https://x\"}", `is not a relying party ID`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Contains(t, minimal, tc.old)
			src := strings.Replace(minimal, tc.old, tc.new, 1)
			_, err := Parse([]byte(src), "m.yaml", nil)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestParseReportsEveryProblem: a file with several mistakes gets them all in one error, in the
// scenario's own fields, its host and its steps.
func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	src := strings.NewReplacer(
		"supported: true", "supported: perhaps\ncolour: blue",
		"join: entra", "join: azuread",
		"action: webauthn-sign-in", "action: browser-sign-in",
	).Replace(minimal)
	_, err := Parse([]byte(src), "m.yaml", nil)
	require.Error(t, err)
	for _, want := range []string{
		`m.yaml:5: supported: want true or false, got text "perhaps"`,
		`m.yaml:6: colour: unknown field "colour" (known: id, title, section, doc, supported, tags, windows, host, key, steps, report)`,
		`m.yaml:9: host.join: unknown join type "azuread"`,
		`m.yaml:18: steps[1].action: unknown action "browser-sign-in"`,
	} {
		require.Contains(t, err.Error(), want)
	}
	require.Len(t, strings.Split(err.Error(), "\n"), 4, err.Error())
}

// A list of scenarios names a scenario by its id in errors, by its index until the id is known.
func TestParseListErrorsNameTheScenario(t *testing.T) {
	t.Parallel()
	item := func(s string) string {
		return "- " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
	}
	src := item(strings.Replace(minimal, "join: entra", "join: azuread", 1)) + item(strings.Replace(minimal, "id: mine", "id: Bad Id", 1))
	_, err := Parse([]byte(src), "l.yaml", nil)
	require.ErrorContains(t, err, `l.yaml:8: mine.host.join: unknown join type "azuread"`)
	require.ErrorContains(t, err, `l.yaml:23: [1].id: "Bad Id": use lower-case letters`)
}

func TestLoadDirErrorNamesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := strings.Replace(minimal, "outcome: {error: pin-invalid}", "outcome: {error: pin-wrong}", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "multi.yaml"), []byte(bad), 0o600))
	_, err := LoadDir(dir)
	require.ErrorContains(t, err, filepath.Join(dir, "multi.yaml")+`:21: steps[1].expect[0].outcome: unknown outcome code "pin-wrong"`)

	_, err = LoadDir(filepath.Join(dir, "missing"))
	require.Error(t, err)
	empty := t.TempDir()
	_, err = LoadDir(empty)
	require.ErrorContains(t, err, "no .yaml files")
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("- id: a\n  title: t\n"))
	f.Add([]byte("expect: [{when: {windows: all}}]"))
	ents, _ := dataFS.ReadDir("data")
	for _, e := range ents {
		if b, err := dataFS.ReadFile("data/" + e.Name()); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse(data, "f.yaml", nil)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "f.yaml:"), "error without file: %v", err)
			require.Nil(t, sc)
			return
		}
		require.NotEmpty(t, sc)
		for _, s := range sc {
			require.Regexp(t, validID, s.ID)
			require.NotEmpty(t, s.Windows)
			require.NotEmpty(t, s.Steps)
			require.NotNil(t, s.Key.Persona)
			for _, st := range s.Steps {
				_, ok := actions[st.Action.Name]
				require.True(t, ok)
				for _, v := range s.Windows {
					o, ok := st.Expected(v)
					require.True(t, ok)
					_, known := kinds[o.Kind]
					require.True(t, known)
				}
			}
		}
	})
}
