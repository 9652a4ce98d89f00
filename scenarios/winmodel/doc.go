package winmodel

import (
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/scenarios/entra"
)

// behaviour lists what the model does over CTAP, with sources; inferred items say so.
var behaviour = []struct{ What, Source string }{
	{"Registration (`register`): the browser's getInfo decides first — `options.rk` must be true (else `no-resident-keys`), `clientPin` or `uv` must be present (else `no-user-verification`), `extensions` must hold `hmac-secret` (else `no-hmac-secret`); a key without a PIN gets one set first. Then makeCredential for `" + entra.RPID + "` with rk, UV through a pinUvAuthToken (mc permission), hmac-secret, credProtect level " + fmt.Sprint(entra.CredProtectLevel) + " (Graph `userVerificationOptional`, enforced), attestation direct, algorithms -7/-257; the tenant checks the AAGUID lists, UV flag, hmac-secret output, attestation (packed + chain to a trusted root when enforced), then go-webauthn verification.",
		"Graph fido2AuthenticationMethod creationOptions; microsoft-compatible-security-key.md; how-to-authentication-passkeys-fido2.md (" + hostRef + " l.8-21)"},
	{"Lock-screen sign-in and unlock: getInfo, an Entra nonce when online, one getAssertion for `" + entra.RPID + "` with no allowList, UV through the PIN (PIN/UV protocol 2 when getInfo offers it, else 1) or built-in UV, hmac-secret with the device's salt. Windows takes the first credential the key returns and never sends getNextAssertion, so the account is whichever the key puts first (newest first on a conforming key: the last account added). **Inferred — not yet confirmed on a real Windows trace.**",
		hostRef + " l.29-35; seed l.46; azure-docs #41443"},
	{"The hmac-secret salt is one per device; its output differs per credential, hence per account and key. Online sign-in caches the output per account + credential; offline sign-in/unlock needs that cache (`offline-no-cached-secret`) and an equal output (`offline-secret-mismatch`). **Inferred — not yet confirmed on a real Windows trace.**",
		seedDoc + " l.45; concept-fido2-hardware-vendor.md (" + hostRef + " l.14-16, 27-28, 34-36)"},
	{"Unlock needs a signed-in session and succeeds only for that session's account (`no-credentials` otherwise). **Inferred — not yet confirmed on a real Windows trace.**", seedDoc + " l.46-47"},
	{"Browser WebAuthn sign-in: getAssertion then getNextAssertion for every further account (the account picker); the user picks one.", seedDoc + " l.46"},
	{"Entra at sign-in: nonce used once, credential registered and not removed (`credential-revoked`), AAGUID still admitted (`aaguid-blocked`: key restrictions also apply to registered keys), UV flag, signature and counter (go-webauthn).", hostRef + " l.14-21"},
	{"PIN: the key counts retries; `CTAP2_ERR_PIN_INVALID` → `pin-invalid`, `CTAP2_ERR_PIN_AUTH_BLOCKED` (3 wrong since power-up) → `pin-auth-blocked`, `CTAP2_ERR_PIN_BLOCKED` → `pin-blocked`.", "CTAP 2.1 §6.5.5"},
	{"Manage (1903+): changePIN; bio enrollment with a be-permission token (no `bioEnroll` in getInfo → not offered); authenticatorReset, which the key refuses with `CTAP2_ERR_NOT_ALLOWED` outside its power-up window (`reset-not-allowed`; `replug` restarts it).", seedDoc + " l.139-143; " + hostRef + " l.53-56"},
}

// Markdown renders docs/windows-model.md from the rule table.
func Markdown() string {
	var b strings.Builder
	b.WriteString("# The Windows host model\n\n")
	b.WriteString("<!-- Generated from scenarios/winmodel (Rules, Permits, behaviour). Do not edit: run\n")
	b.WriteString("     `go test ./scenarios/winmodel -run TestDocUpToDate -update`. -->\n\n")
	b.WriteString("`fidolab run` replays the cases of the seed document against this model: a host that speaks real CTAP\n")
	b.WriteString("to the key and an Entra tenant (`scenarios/entra`, go-webauthn) as relying party `" + entra.RPID + "`.\n")
	b.WriteString("Windows-side gates come from the table below; everything that depends on the key (which account\n")
	b.WriteString("signs in, PIN results, hmac-secret outputs, the reset window) comes from the key's CTAP answers.\n\n")
	b.WriteString("Sources: **seed** = `../shared/seed/windows-fido2-sign-in.md` (line numbers of that file);\n")
	b.WriteString("**reference** = `../shared/reference/windows-host.md`, which cites Microsoft documentation and issues.\n\n")

	b.WriteString("## Gates (evaluated in this order; the first that matches decides)\n\n")
	b.WriteString("Every gate answers `not-offered` with the code shown.\n\n")
	b.WriteString("| # | rule | actions | refused when | code | source | status |\n|---|---|---|---|---|---|---|\n")
	for i, r := range Rules {
		status := "documented"
		if r.Inferred {
			status = "**inferred — not yet confirmed on a real Windows trace**"
		}
		cond := r.Condition
		if r.Note != "" {
			cond += " — " + r.Note
		}
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s | `%s` | %s | %s |\n", i+1, r.ID, strings.Join(r.Actions, ", "),
			esc(cond), r.Code, esc(r.Source), status)
	}
	b.WriteString("\n" + orderNote + " **Inferred — not yet confirmed on a real Windows trace.**\n\n")

	b.WriteString("## What works (the other side of each gate)\n\n| permit | condition | source |\n|---|---|---|\n")
	for _, p := range Permits {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.ID, esc(p.Condition), esc(p.Source))
	}

	b.WriteString("\n## Behaviour over CTAP\n\n")
	for _, x := range behaviour {
		fmt.Fprintf(&b, "- %s (%s)\n", x.What, x.Source)
	}
	b.WriteString("\nEach step's notes record the model's choices: the rule that gated, the getInfo fields that decided,\n")
	b.WriteString("the PIN/UV protocol used, how many credentials the key reported and which account the first\n")
	b.WriteString("assertion named.\n\n")
	b.WriteString("## Open questions\n\n")
	b.WriteString("- credProtect: WebAuthn maps Graph's `userVerificationOptional` to level 1, which the model sends; one\n")
	b.WriteString("  public WebAuthN event 1101 shows `{credProtect: 2}` from Windows (reference windows-webauthn-eventlog.md\n")
	b.WriteString("  l.46-48) for an unknown relying party. Confirm on a real Entra registration trace.\n")
	b.WriteString("- The PIN/UV protocol Windows picks is unknown (" + hostRef + " l.35); the model picks 2 when offered.\n")
	return b.String()
}

func esc(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
