package winmodel

import (
	"strings"

	"github.com/fidolab/fidolab/scenarios/host"
)

// Sources cited by the rules, both in docs/reference: the seed document, cited by section and
// line, and what is known of Windows, cited by section. TestSourcesResolve checks every citation.
const (
	seedDoc   = "seed windows-fido2-sign-in.md"
	hostRef   = "reference windows-host.md"
	remoteRef = hostRef + " § Remote Desktop, VDI and Citrix"
	avdAuthRD = "learn.microsoft.com/azure/virtual-desktop/authentication (" + remoteRef + ")"
	citrixRD  = "docs.citrix.com, Citrix Virtual Apps and Desktops › FIDO2 and WebAuthn authentication (" + remoteRef + ")"
)

// normalize spells an action the way the rules and handlers know it: rdp-sign-in, the catalog's
// older spelling, is remote-sign-in via rdp.
func normalize(a host.Action) host.Action {
	if a.Name == host.ActRDPSignIn {
		a.Name, a.Args = host.ActRemoteSignIn, withArg(a.Args, "via", "rdp")
	}
	return a
}

// via is the remote protocol of a remote-sign-in (rdp when the action does not say).
func via(a host.Action) string {
	if v := a.Args["via"]; v != "" {
		return v
	}
	return "rdp"
}

// Action groups a rule can gate.
var (
	windowsLogon = []string{host.ActLockScreenSignIn, host.ActUnlock}
	webauthnAPI  = []string{host.ActRegister, host.ActWebAuthnSignIn}
	manageKey    = []string{host.ActChangePIN, host.ActEnrollFingerprint, host.ActResetKey}
)

// Rule is one Windows-side gate: when it matches an action on a device, the security-key path is
// not offered (or not supported) with Code. Rules are evaluated in table order; the first match wins.
type Rule struct {
	ID        string
	Actions   []string // actions the rule gates
	Condition string   // the rule in words, for docs/windows-model.md
	Code      string   // outcome code (kind is always not-offered)
	Source    string   // where the rule comes from: seed section and line, or reference section
	// Inferred marks a rule (or its place in the order) that no source states outright.
	Inferred bool
	// Note explains a decision or an inference.
	Note  string
	Match func(cfg host.Config, a host.Action) bool
}

func rank(name string) int {
	v, err := host.ParseVersion(name)
	if err != nil {
		return 0
	}
	return v.Rank
}

func before(cfg host.Config, name string) bool { return cfg.Version.Rank < rank(name) }

// Rules is the gate table, in evaluation order.
var Rules = []Rule{
	{
		ID: "authenticator-passkey", Actions: []string{host.ActAuthenticatorPasskeySignIn},
		Condition: "signing in or unlocking Windows with a passkey in Microsoft Authenticator",
		Code:      host.CodeUnsupportedScenario, Source: seedDoc + " § Unsupported scenarios, l.39",
		Match: func(host.Config, host.Action) bool { return true },
	},
	{
		ID: "run-as", Actions: []string{host.ActRunAs},
		Condition: "Run as with a security key", Code: host.CodeUnsupportedScenario,
		Source: seedDoc + " § Unsupported scenarios, l.43",
		Match:  func(host.Config, host.Action) bool { return true },
	},
	{
		ID: "smime", Actions: []string{host.ActSMIMESign},
		Condition: "S/MIME with a security key", Code: host.CodeUnsupportedScenario,
		Source: seedDoc + " § Unsupported scenarios, l.42",
		Match:  func(host.Config, host.Action) bool { return true },
	},
	{
		ID: "server-sign-in", Actions: []string{host.ActServerSignIn},
		Condition: "signing in to a server with a security key", Code: host.CodeUnsupportedScenario,
		Source: seedDoc + " § Unsupported scenarios, l.44",
		Match:  func(host.Config, host.Action) bool { return true },
	},
	{
		ID: "remote-without-redirection", Actions: []string{host.ActRemoteSignIn},
		Condition: "RDP, VDI or Citrix without WebAuthn (FIDO2) redirection (Args redirection != true)",
		Code:      host.CodeUnsupportedScenario, Source: seedDoc + " § Unsupported scenarios, l.41",
		Match: func(_ host.Config, a host.Action) bool { return !strings.EqualFold(a.Args["redirection"], "true") },
	},
	{
		ID: "remote-logon-screen", Actions: []string{host.ActRemoteSignIn},
		Condition: "RDP, VDI or Citrix with redirection, but at the remote session's logon screen (Args at = logon)",
		Code:      host.CodeUnsupportedScenario, Source: avdAuthRD + "; " + citrixRD,
		Note:  "redirection carries WebAuthn calls made inside the session; Citrix: the feature \"does not support logging into the virtual session using WebAuthn or FIDO2\"",
		Match: func(_ host.Config, a host.Action) bool { return a.Args["at"] == "logon" },
	},
	{
		ID: "rdp-redirection-version", Actions: []string{host.ActRemoteSignIn},
		Condition: "RDP or VDI (Azure Virtual Desktop) WebAuthn redirection needs Windows 11 22H2 with the 2022-10 CU, or Windows 10 20H2+ with the matching update: version < 10-20H2",
		Code:      host.CodeVersionUnsupported, Source: avdAuthRD, Inferred: true,
		Note: "the model takes the case's version for both ends (local device and session host) and assumes the cumulative update is installed from 10-20H2; " +
			"Citrix's FIDO2 redirection asks Windows 10 1809+ on both ends, which every version the catalog knows meets",
		Match: func(c host.Config, a host.Action) bool { return via(a) != "citrix" && before(c, "10-20H2") },
	},
	{
		ID: "webauthn-version", Actions: append(webauthnAPI, host.ActRemoteSignIn),
		Condition: "WebAuthn (browser registration and sign-in) needs Windows 10 1903+: version < 10-1903",
		Code:      host.CodeVersionUnsupported, Source: seedDoc + " § Requirements, l.26",
		Match: func(c host.Config, _ host.Action) bool { return before(c, "10-1903") },
	},
	{
		ID: "manage-version", Actions: manageKey,
		Condition: "Settings › Accounts › Sign-in options › Security Key › Manage needs 10-1903+: version < 10-1903",
		Code:      host.CodeVersionUnsupported, Source: seedDoc + " § Manage security key biometric, PIN, or reset security key, l.141",
		Match: func(c host.Config, _ host.Action) bool { return before(c, "10-1903") },
	},
	{
		ID: "onprem-only", Actions: windowsLogon,
		Condition: "on-premises AD DS only (join onprem)", Code: host.CodeUnsupportedScenario,
		Source: seedDoc + " § Unsupported scenarios, l.40",
		Match:  func(c host.Config, _ host.Action) bool { return c.Join == host.JoinOnPrem },
	},
	{
		ID: "workgroup", Actions: windowsLogon,
		Condition: "device not joined (workgroup): no Entra account to sign in to", Code: host.CodeJoinUnsupported,
		Source: seedDoc + " § Requirements, l.21-28 (only Entra joined and hybrid joined columns)", Inferred: true,
		Note:  "the document lists only the two join types; a workgroup device has no Entra logon at all",
		Match: func(c host.Config, _ host.Action) bool { return c.Join == host.JoinWorkgroup },
	},
	{
		ID: "enable-none", Actions: windowsLogon,
		Condition: "no enabling policy (UseSecurityKeyForSignin default 0)", Code: host.CodeNotEnabled,
		Source: seedDoc + " § Enable security keys for Windows sign-in, l.55-62; " + hostRef + " § Windows sign-in and unlock",
		Match:  func(c host.Config, _ host.Action) bool { return c.Enable == host.EnableNone || c.Enable == "" },
	},
	{
		ID: "intune-whfb-provisioned", Actions: windowsLogon,
		Condition: "Intune WHfB \"Use security keys for sign-in\" on a device provisioned before the setting",
		Code:      host.CodePolicyNotApplied, Source: seedDoc + " § Enable with Microsoft Intune, l.79-80",
		Match: func(c host.Config, _ host.Action) bool {
			return c.Enable == host.EnableIntuneWHfB && c.ProvisionedBeforePolicy
		},
	},
	{
		ID: "ppkg-1903-sharedpc", Actions: windowsLogon,
		Condition: "provisioning package on 10-1903 without EnableSharedPCMode", Code: host.CodeSharedPCRequired,
		Source: seedDoc + " § Enable with a provisioning package, l.121-122",
		Match: func(c host.Config, _ host.Action) bool {
			return c.Enable == host.EnablePPKG && c.Version.Name == "10-1903" && !c.SharedPC
		},
	},
	{
		ID: "gpo-hybrid-only", Actions: windowsLogon,
		Condition: "Group Policy \"Turn on security key sign-in\" on a device that is not hybrid joined",
		Code:      host.CodeGPOHybridOnly, Source: seedDoc + " § Enable with Group Policy, l.62 and l.126",
		Match: func(c host.Config, _ host.Action) bool {
			return c.Enable == host.EnableGPO && c.Join != host.JoinHybrid
		},
	},
	{
		ID: "entra-joined-version", Actions: windowsLogon,
		Condition: "Entra joined device below 10-1909", Code: host.CodeVersionUnsupported,
		Source: seedDoc + " § Requirements, l.27; § Prepare devices, l.51; § Unsupported scenarios, l.47",
		Note: "it also decides the document's \"unlocking a device running Windows 10 version 1809\" (l.47) for Entra joined devices, " +
			"as hybrid-joined-version does for hybrid ones: no device that may sign in at all runs 1809, so a separate unlock-1809 rule never decided anything and was folded in",
		Match: func(c host.Config, _ host.Action) bool { return c.Join == host.JoinEntra && before(c, "10-1909") },
	},
	{
		ID: "hybrid-joined-version", Actions: windowsLogon,
		Condition: "hybrid joined device below 10-2004", Code: host.CodeVersionUnsupported,
		Source: seedDoc + " § Requirements, l.28; § Prepare devices, l.53; § Unsupported scenarios, l.47",
		Match:  func(c host.Config, _ host.Action) bool { return c.Join == host.JoinHybrid && before(c, "10-2004") },
	},
}

// orderNote explains the one inference every row shares: the order in which gates apply.
const orderNote = "Order of the rows (enabling policy before version) is inferred: the document states each rule alone. " +
	"Enabling rules come first so that a provisioning package on 10-1903 without shared PC mode reports shared-pc-required."

// Gate returns the first rule that refuses action a on a device with cfg, or nil.
func Gate(cfg host.Config, a host.Action) *Rule { return gate(Rules, cfg, a) }

// gate is Gate over a rule table of the caller's (a model built WithoutRule).
func gate(rules []Rule, cfg host.Config, a host.Action) *Rule {
	a = normalize(a)
	for i := range rules {
		r := &rules[i]
		if !contains(r.Actions, a.Name) {
			continue
		}
		if r.Match(cfg, a) {
			return r
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Permit is a configuration the document says works; it gates nothing and is listed in the docs
// so that both sides of every rule are visible.
type Permit struct {
	ID, Condition, Source string
}

// Permits are the enabling paths and versions that lead to a security-key sign-in.
var Permits = []Permit{
	{"intune-whfb", "Intune WHfB \"Use security keys for sign-in\" on a device enrolled after the setting", seedDoc + " § Enable with Microsoft Intune, l.69-77"},
	{"intune-oma", "Intune custom OMA-URI ./Device/Vendor/MSFT/PassportForWork/SecurityKey/UseSecurityKeyForSignin = 1, on any device", seedDoc + " § Targeted Intune deployment, l.82-99"},
	{"ppkg", "provisioning package (on 10-1903 together with EnableSharedPCMode)", seedDoc + " § Enable with a provisioning package, l.101-122"},
	{"gpo-hybrid", "Group Policy \"Turn on security key sign-in\" on a hybrid joined device", seedDoc + " § Enable with Group Policy, l.124-129"},
	{"entra-1909", "Entra joined device on 10-1909 or later", seedDoc + " § Requirements, l.27"},
	{"hybrid-2004", "hybrid joined device on 10-2004 or later", seedDoc + " § Requirements, l.28"},
	{"rdp-redirection", "browser WebAuthn inside an RDP or Azure Virtual Desktop (VDI) session with WebAuthn redirection, 10-20H2+ (with update) or 11 22H2+ (2022-10 CU)", avdAuthRD},
	{"citrix-redirection", "browser WebAuthn inside a Citrix session with FIDO2 redirection (Virtual Apps and Desktops and VDA 2009+, Workspace app 2009.1+, Windows 10 1809+ on both ends), on every version that has WebAuthn (1903)", citrixRD},
	{"hybrid-onprem", "hybrid joined device whose organisation completed Enable FIDO2 authentication to on-premises resources: a Microsoft Entra Kerberos server object in the user's domain and patched writable domain controllers (else onprem-not-set-up after Entra accepted the key)", seedDoc + " § Enable security keys for Windows sign-in, l.65; § Requirements, l.29; " + hostRef + " § On-premises resources for hybrid joined devices"},
	{"whfb-independent", "Intune's \"Use security keys for sign-in\" works whether Windows Hello for Business is enabled, disabled or not configured", seedDoc + " § Enable with Microsoft Intune, l.77"},
}
