package catalog

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/host"
)

// actionSpec says what an action takes: which fields it needs and which Args it accepts.
type actionSpec struct {
	needAccount bool
	needNewPIN  bool
	args        map[string]func(string) error // accepted Args and their validators
	required    []string                      // Args that must be present
}

var (
	anyText   = func(string) error { return nil }
	boolText  = func(s string) error { _, err := strconv.ParseBool(s); return err }
	aaguidArg = func(s string) error {
		if s == "key" {
			return nil
		}
		_, err := persona.ParseAAGUID(s)
		return err
	}
	remoteVia = oneOf("rdp", "vdi", "citrix")
	remoteAt  = oneOf("session", "logon")
	rpIDArg   = func(s string) error {
		if !validRPID.MatchString(s) {
			return fmt.Errorf("%q is not a relying party ID (a domain name such as github.com)", s)
		}
		if s == "login.microsoft.com" {
			return fmt.Errorf("login.microsoft.com is Entra's own relying party: use register")
		}
		return nil
	}
	tenantArg = func(s string) error {
		if !validID.MatchString(s) {
			return fmt.Errorf("%q: a tenant name of lower-case letters, digits, '-', '_' and '.'", s)
		}
		return nil
	}
	secondsArg = func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err == nil && (f < 0 || f > 3600) {
			err = fmt.Errorf("%v outside 0..3600", f)
		}
		return err
	}
)

var validRPID = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

// oneOf accepts exactly the given words.
func oneOf(words ...string) func(string) error {
	return func(s string) error {
		if !slices.Contains(words, s) {
			return fmt.Errorf("%q: want %s", s, strings.Join(words, ", "))
		}
		return nil
	}
}

// actions is the action vocabulary (scenarios/host/vocabulary.go) with each action's parameters.
var actions = map[string]actionSpec{
	host.ActRegister:          {needAccount: true},
	host.ActSetPIN:            {needNewPIN: true},
	host.ActLockScreenSignIn:  {},
	host.ActUnlock:            {},
	host.ActWebAuthnSignIn:    {},
	host.ActGoOffline:         {},
	host.ActGoOnline:          {},
	host.ActSignOut:           {},
	host.ActChangePIN:         {needNewPIN: true},
	host.ActEnrollFingerprint: {args: map[string]func(string) error{"name": anyText}},
	host.ActResetKey:          {},
	host.ActReplug:            {},
	host.ActWait:              {args: map[string]func(string) error{"seconds": secondsArg}, required: []string{"seconds"}},
	host.ActRemoveKey:         {needAccount: true},
	host.ActBlockAAGUID:       {args: map[string]func(string) error{"aaguid": aaguidArg}, required: []string{"aaguid"}},
	host.ActAllowAAGUID:       {args: map[string]func(string) error{"aaguid": aaguidArg}, required: []string{"aaguid"}},
	host.ActRDPSignIn:         {args: map[string]func(string) error{"redirection": boolText, "at": remoteAt}, required: []string{"redirection"}},
	host.ActRemoteSignIn: {args: map[string]func(string) error{"via": remoteVia, "redirection": boolText, "at": remoteAt},
		required: []string{"via", "redirection"}},
	host.ActRegisterOtherSite: {needAccount: true, args: map[string]func(string) error{"rp": rpIDArg,
		"uv": oneOf("required", "preferred", "discouraged"), "exclude": oneOf("other-key")}, required: []string{"rp"}},
	host.ActRegisterOtherTenant:        {needAccount: true, args: map[string]func(string) error{"tenant": tenantArg}, required: []string{"tenant"}},
	host.ActRunAs:                      {},
	host.ActSMIMESign:                  {},
	host.ActServerSignIn:               {},
	host.ActAuthenticatorPasskeySignIn: {},
}

// kinds maps each outcome kind to whether it names an account (else a code, or nothing for done).
var kinds = map[string]string{
	host.KindSignedIn:   "account",
	host.KindUnlocked:   "account",
	host.KindRegistered: "account",
	host.KindDone:       "",
	host.KindError:      "code",
	host.KindNotOffered: "code",
}

// codes is the outcome code vocabulary.
var codes = []string{
	host.CodeVersionUnsupported, host.CodeJoinUnsupported, host.CodeNotEnabled, host.CodePolicyNotApplied,
	host.CodeSharedPCRequired, host.CodeGPOHybridOnly, host.CodeUnsupportedScenario, host.CodePINInvalid,
	host.CodePINBlocked, host.CodePINAuthBlocked, host.CodePINRequired, host.CodePINPolicy,
	host.CodeNoCredentials, host.CodeKeyStoreFull, host.CodeNoHMACSecret, host.CodeNoResidentKeys,
	host.CodeNoUserVerification, host.CodeAttestationRejected, host.CodeAAGUIDBlocked,
	host.CodeCredentialRevoked, host.CodeOnPremNotSetUp, host.CodeOfflineNoCachedSecret, host.CodeOfflineSecretMismatch,
	host.CodeResetNotAllowed, host.CodeResetFailed, host.CodeUserCancelled, host.CodeTimeout, host.CodeKeyError,
}

var joins = []host.Join{host.JoinEntra, host.JoinHybrid, host.JoinOnPrem, host.JoinWorkgroup}

var enablements = []host.Enablement{host.EnableIntuneWHfB, host.EnableIntuneOMA, host.EnablePPKG, host.EnableGPO, host.EnableNone}

var whfbSettings = []host.HelloForBusiness{host.WHfBNotConfigured, host.WHfBEnabled, host.WHfBDisabled}

func whfbNames() []string {
	var n []string
	for _, w := range whfbSettings {
		n = append(n, string(w))
	}
	return n
}

// Actions lists the action vocabulary, sorted (for docs and error messages).
func Actions() []string {
	var n []string
	for a := range actions {
		n = append(n, a)
	}
	sort.Strings(n)
	return n
}

// Codes lists the outcome codes.
func Codes() []string { return slices.Clone(codes) }

// Kinds lists the outcome kinds.
func Kinds() []string {
	var n []string
	for k := range kinds {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func joinNames() []string {
	var n []string
	for _, j := range joins {
		n = append(n, string(j))
	}
	return n
}

func enableNames() []string {
	var n []string
	for _, e := range enablements {
		n = append(n, string(e))
	}
	return n
}
