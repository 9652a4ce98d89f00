package report

import (
	"time"

	"github.com/fidolab/fidolab/scenarios/result"
)

// The fixtures are built by hand so the reports are tested apart from the runner: several
// scenarios over several versions with every verdict, grouped and ungrouped failures, two key
// causes, an error, a missing cell, and exchanges with multi-line diagnostic notation.

var fixtureVersions = []string{"10-1809", "10-1909", "10-2004", "11-24H2"}

const multiDoc = "Signing in or unlocking a Windows device with a security key containing multiple Microsoft Entra accounts. This scenario utilizes the last account added to the security key. WebAuthN allows users to choose the account they wish to use."

func getAssertionExchange(status, account string) result.Exchange {
	req := `{
  1: "login.microsoft.com",
  2: h'<32 bytes clientDataHash>',
  4: {"hmac-secret": {1: {1: 2, 3: -25, -1: 1, -2: h'…', -3: h'…'}, 2: <redacted>, 3: <redacted>, 4: 2}},
  5: {"up": true},
  6: <redacted>,
  7: 2
}`
	if status != "CTAP2_OK" {
		return result.Exchange{Command: "authenticatorGetAssertion", Request: req, Response: status, Status: status, Duration: 850 * time.Microsecond}
	}
	resp := `CTAP2_OK {
  1: {"id": h'9a3f…', "type": "public-key"},
  2: h'<authData 37+ bytes>',
  3: h'<signature>',
  4: {"id": h'` + account + `', "name": "` + account + `@contoso.com"},
  5: 2
}`
	return result.Exchange{Command: "authenticatorGetAssertion", Request: req, Response: resp, Status: status, Duration: 3200 * time.Microsecond}
}

func pinTokenExchanges() []result.Exchange {
	return []result.Exchange{
		{Command: "authenticatorClientPIN getKeyAgreement", Request: "{1: 2, 2: 2}", Response: "CTAP2_OK {1: {1: 2, 3: -25, -1: 1, -2: h'…', -3: h'…'}}", Status: "CTAP2_OK", Duration: 400 * time.Microsecond},
		{Command: "authenticatorClientPIN getPinUvAuthTokenUsingPinWithPermissions", Request: "{\n  1: 2,\n  2: 9,\n  3: {…},\n  6: <redacted>,\n  9: 2\n}", Response: "CTAP2_OK {2: <redacted>}", Status: "CTAP2_OK", Duration: 1100 * time.Microsecond},
	}
}

func step(action, detail string, exp, obs result.Outcome, v result.Verdict, ex ...result.Exchange) *result.Step {
	return &result.Step{Action: action, Detail: detail, Expected: exp, Observed: obs, Verdict: v, Exchanges: ex, Duration: 4 * time.Millisecond}
}

func signedIn(a string) result.Outcome   { return result.Outcome{Kind: "signed-in", Account: a} }
func registered(a string) result.Outcome { return result.Outcome{Kind: "registered", Account: a} }
func errOut(code, reason string) result.Outcome {
	return result.Outcome{Kind: "error", Code: code, Reason: reason}
}

func lockScreenCase(v string) *result.Case {
	return &result.Case{
		ID: "lock-screen-sign-in", Title: "Sign in at the lock screen with a security key", Version: v, Supported: true,
		DocWords:   "Bala can choose the security key credential provider from the Windows 10 lock screen and insert the security key to sign into Windows.",
		DocSection: "Sign in to Windows with a FIDO2 security key", File: "catalog/lock-screen.yaml", Tags: []string{"lock-screen"},
		Steps: []*result.Step{
			step("register", "account alice, PIN 1234", registered("alice"), registered("alice"), result.Pass),
			step("lock-screen-sign-in", "PIN 1234", signedIn("alice"), signedIn("alice"), result.Pass,
				append(pinTokenExchanges(), getAssertionExchange("CTAP2_OK", "alice"))...),
		},
		Verdict: result.Pass, Duration: 12 * time.Millisecond,
	}
}

func multiAccountCase(v string, pass bool) *result.Case {
	obs, verdict := signedIn("bob"), result.Pass
	if !pass {
		obs, verdict = signedIn("alice"), result.Fail
		obs.Reason = "the host signed in with the first credential returned"
	}
	exp := signedIn("bob")
	exp.Reason = "last account added"
	s := step("lock-screen-sign-in", "PIN 1234", exp, obs, verdict,
		append(pinTokenExchanges(), getAssertionExchange("CTAP2_OK", obs.Account))...)
	s.Notes = []string{"PIN protocol 2 chosen (the key offers it)", "numberOfCredentials 2: Windows does not ask for the next one"}
	return &result.Case{
		ID: "multi-account-lock-screen", Title: "Two accounts on one key: the lock screen signs in as the last added", Version: v,
		Supported: true, DocWords: multiDoc, DocSection: "Known issues", File: "catalog/multi-account.yaml",
		Steps: []*result.Step{
			step("register", "account alice", registered("alice"), registered("alice"), result.Pass),
			step("register", "account bob", registered("bob"), registered("bob"), result.Pass),
			s,
		},
		Verdict: verdict, Duration: 21 * time.Millisecond,
	}
}

func offlineCase(v, persona string) *result.Case {
	c := &result.Case{
		ID: "offline-sign-in-after-online", Title: "Offline sign-in works after an online sign-in", Version: v, Supported: true,
		DocWords:   "If you're not using a security key to sign in to your device while online, you can't use it to sign in or unlock offline.",
		DocSection: "Known issues", File: "catalog/offline.yaml",
		Steps: []*result.Step{
			step("register", "account alice, PIN 1234", registered("alice"), registered("alice"), result.Pass),
			step("lock-screen-sign-in", "PIN 1234", signedIn("alice"), signedIn("alice"), result.Pass),
			step("go-offline", "", result.Outcome{Kind: "done"}, result.Outcome{Kind: "done"}, result.Pass),
			step("lock-screen-sign-in", "PIN 1234", signedIn("alice"), signedIn("alice"), result.Pass),
		},
		Verdict: result.Pass, Duration: 30 * time.Millisecond,
	}
	if persona == "no-hmac-secret" {
		c.Steps[0].Observed = errOut("no-hmac-secret", "getInfo extensions lack hmac-secret")
		c.Steps[0].Verdict = result.KeyIncompatible
		c.Steps[0].Exchanges = []result.Exchange{{Command: "authenticatorGetInfo", Request: "", Response: "CTAP2_OK {\n  1: [\"FIDO_2_0\", \"FIDO_2_1\"],\n  2: [\"credProtect\"],\n  3: h'…'\n}", Status: "CTAP2_OK", Duration: 300 * time.Microsecond}}
		c.Steps = c.Steps[:1]
		c.Verdict = result.KeyIncompatible
		c.KeyCause = "no hmac-secret extension: Windows needs it to derive the offline secret"
	}
	return c
}

func pickerCase(v string, keyinc bool) *result.Case {
	c := &result.Case{
		ID: "webauthn-account-picker", Title: "WebAuthn lets the user choose the account", Version: v, Supported: true,
		DocWords: multiDoc, DocSection: "Known issues",
		Steps: []*result.Step{
			step("webauthn-sign-in", "PIN 1234, pick alice", signedIn("alice"), signedIn("alice"), result.Pass,
				getAssertionExchange("CTAP2_OK", "bob"),
				result.Exchange{Command: "authenticatorGetNextAssertion", Response: "CTAP2_OK {4: {\"name\": \"alice@contoso.com\"}}", Status: "CTAP2_OK", Duration: 200 * time.Microsecond}),
		},
		Verdict: result.Pass, Duration: 9 * time.Millisecond,
	}
	if keyinc {
		c.Steps[0].Observed = errOut("no-credentials", "")
		c.Steps[0].Verdict = result.KeyIncompatible
		c.Steps[0].Exchanges = []result.Exchange{getAssertionExchange("CTAP2_ERR_NO_CREDENTIALS", "")}
		c.Verdict = result.KeyIncompatible
		c.KeyCause = "no resident keys: discoverable credentials are not kept, so an empty allowList finds nothing"
	}
	return c
}

func resetCase(v string) *result.Case {
	c := &result.Case{
		ID: "reset-outside-window", Title: "Reset from Settings fails 10 s after power-up", Version: v, Supported: true,
		DocWords: "Settings › Accounts › Sign-in options › Security Key › Manage", File: "catalog/manage.yaml",
		Steps: []*result.Step{
			step("replug", "", result.Outcome{Kind: "done"}, result.Outcome{Kind: "done"}, result.Pass),
			step("wait", "11 seconds", result.Outcome{Kind: "done"}, result.Outcome{Kind: "done"}, result.Pass),
			step("reset-key", "", errOut("reset-not-allowed", "outside the 10 s window"), result.Outcome{Kind: "done"}, result.Fail,
				result.Exchange{Command: "authenticatorReset", Response: "CTAP2_OK", Status: "CTAP2_OK", Duration: 2 * time.Millisecond}),
		},
		Verdict: result.Fail, Duration: 11 * time.Millisecond,
	}
	if v == "11-24H2" {
		c.Steps = nil
		c.Verdict = result.Error
		c.Error = "set-up failed: emulator: open state file: permission denied"
	}
	return c
}

// webauthnLineCase is a version line: refused (as the document says) on 1809, worked after.
func webauthnLineCase(v string) *result.Case {
	exp := signedIn("alice")
	if v == "10-1809" {
		exp = result.Outcome{Kind: "not-offered", Code: "version-unsupported", Reason: "WebAuthn needs 1903"}
	}
	obs := exp
	obs.Reason = ""
	return &result.Case{
		ID: "req-webauthn-1903", Title: "Browser sign-in needs Windows 10 1903", Version: v, Supported: true,
		DocWords: "WebAuthN requires Windows 10 version 1903 or higher", DocSection: "Requirements", File: "catalog/req.yaml",
		Steps:   []*result.Step{step("webauthn-sign-in", "PIN typed", exp, obs, result.Pass)},
		Verdict: result.Pass, Duration: 5 * time.Millisecond,
	}
}

// fixtureRun is a run of the no-hmac-secret persona against four Windows versions.
func fixtureRun() *result.Run {
	r := &result.Run{
		Started:  time.Date(2025, 6, 3, 14, 5, 9, 0, time.UTC),
		Duration: 1234 * time.Millisecond,
		Target:   "model", Key: "in-process persona no-hmac-secret", Persona: "no-hmac-secret",
		Versions: fixtureVersions,
	}
	for _, v := range fixtureVersions {
		r.Cases = append(r.Cases, lockScreenCase(v))
	}
	for _, v := range fixtureVersions[1:] {
		r.Cases = append(r.Cases, multiAccountCase(v, v == "10-1909"))
	}
	for _, v := range fixtureVersions[1:] {
		r.Cases = append(r.Cases, offlineCase(v, "no-hmac-secret"))
	}
	for _, v := range fixtureVersions[1:] {
		r.Cases = append(r.Cases, pickerCase(v, v == "11-24H2"))
	}
	for _, v := range fixtureVersions[2:] {
		r.Cases = append(r.Cases, resetCase(v))
	}
	for _, v := range fixtureVersions[:2] {
		r.Cases = append(r.Cases, webauthnLineCase(v))
	}
	return r
}

// fullRun is all ten versions, all passing: the width a real run has.
func fullRun(versions []string) *result.Run {
	r := &result.Run{Target: "model", Key: "in-process persona default", Versions: versions,
		Started: time.Date(2025, 6, 3, 14, 5, 9, 0, time.UTC), Duration: 3 * time.Second}
	for _, v := range versions {
		r.Cases = append(r.Cases, lockScreenCase(v), multiAccountCase(v, true))
	}
	return r
}

// hostileRun carries markup and control characters in every free-text field.
func hostileRun() *result.Run {
	const evil = `</script><b>bold</b><script>alert(1)</script>`
	c := multiAccountCase("10-2004", false)
	c.ID = `evil"><img src=x onerror=alert(2)>`
	c.Title = "Title " + evil
	c.DocWords = `<a href="https://evil.example/">click</a> & ` + evil
	c.DocSection = `" onmouseover="alert(3)`
	c.Tags = []string{evil}
	c.Steps[2].Notes = append(c.Steps[2].Notes, evil)
	c.Steps[2].Observed.Reason = evil + "\x00\x1b[31m"
	c.Steps[2].Exchanges[2].Request = "</pre>" + evil + "\n|pipe|`tick`"
	c.Steps[2].Exchanges[2].Status = `CTAP2_OK" onclick="alert(4)`
	return &result.Run{Target: "model " + evil, Key: `javascript:alert(5)`, Persona: evil, Versions: []string{"10-2004"},
		Cases: []*result.Case{c}}
}

type resultRun = result.Run
