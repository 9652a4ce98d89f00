// Package winmodel is the built-in behavioural model of Windows security-key sign-in: a
// host.Target whose hosts do over CTAP what Windows does, against a real key. Windows-side gates
// (version, join type, enabling policy, unsupported scenarios) come from one rule table, Rules in
// gates.go, each rule with its source in the seed document or docs/reference; everything that
// depends on the key — which account signs in, PIN results, hmac-secret outputs, the reset window —
// comes from the key's CTAP answers, never from the expected outcome.
//
// model.go holds the Target and its hosts; the operations live one family per file: register.go
// (browser registration for Entra ID), signin.go (lock-screen sign-in, unlock, browser sign-in),
// manage.go (Settings › Security Key › Manage, setting a PIN, the tenant's key restrictions), uv.go
// (PIN and built-in user verification), errors.go (CTAP errors as outcomes). rulesdoc.go renders
// docs/windows-model.md from the rule table and windows-model.md.tmpl.
package winmodel
