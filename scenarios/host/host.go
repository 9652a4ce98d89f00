// Package host is the contract between the scenario runner and the place Windows runs: the
// built-in behavioural model now, a real Windows VM later. The catalog speaks only in these terms
// (versions, join types, enabling methods, actions, outcomes), so a new target needs no catalog change.
package host

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/result"
)

// Version is a Windows release, ordered by Rank.
type Version struct {
	Name string // catalog spelling: "10-1809", "11-24H2"
	Rank int    // increases with release date
}

// Versions are the Windows releases the catalog expands over, oldest first.
var Versions = []Version{
	{"10-1809", 1}, {"10-1903", 2}, {"10-1909", 3}, {"10-2004", 4}, {"10-20H2", 5}, {"10-21H2", 6},
	{"10-22H2", 7}, {"11-22H2", 8}, {"11-23H2", 9}, {"11-24H2", 10},
}

// ParseVersion accepts "10-1909", "win10-1909", "Windows 10 1909", "11-24h2".
func ParseVersion(s string) (Version, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, "WINDOWS")
	t = strings.TrimPrefix(t, "WIN")
	t = strings.Join(strings.Fields(strings.ReplaceAll(t, "-", " ")), "-")
	for _, v := range Versions {
		if strings.ToUpper(v.Name) == t {
			return v, nil
		}
	}
	return Version{}, fmt.Errorf("unknown Windows version %q (known: %s)", s, VersionNames())
}

// VersionNames lists the known versions.
func VersionNames() string {
	var n []string
	for _, v := range Versions {
		n = append(n, v.Name)
	}
	return strings.Join(n, ", ")
}

// Join is how the device is joined.
type Join string

// Join types.
const (
	JoinEntra     Join = "entra"     // Microsoft Entra joined
	JoinHybrid    Join = "hybrid"    // Microsoft Entra hybrid joined
	JoinOnPrem    Join = "onprem"    // on-premises AD DS only
	JoinWorkgroup Join = "workgroup" // not joined
)

// Enablement is how security-key sign-in was turned on for the device.
type Enablement string

// Enabling methods (seed document, "Enable security keys for Windows sign-in").
const (
	EnableIntuneWHfB Enablement = "intune-whfb" // Intune WHfB "Use security keys for sign-in" (not for already provisioned devices)
	EnableIntuneOMA  Enablement = "intune-oma"  // custom OMA-URI …/SecurityKey/UseSecurityKeyForSignin = 1
	EnablePPKG       Enablement = "ppkg"        // provisioning package (1903 also needs EnableSharedPCMode)
	EnableGPO        Enablement = "gpo"         // "Turn on security key sign-in" (hybrid only)
	EnableNone       Enablement = "none"
)

// Tenant is the Entra side of a case.
type Tenant struct {
	EnforceAttestation bool     // attestation enforcement (applies at registration)
	AAGUIDAllow        []string // key restriction: only these AAGUIDs (empty = any)
	AAGUIDBlock        []string // key restriction: never these AAGUIDs
	// CounterMustIncrease refuses a sign-in whose signature counter did not increase. No source
	// says Entra does this; it is a setting a case turns on (inferred).
	CounterMustIncrease bool
}

// OnPremises is what a hybrid joined device's organisation set up for "Enable FIDO2
// authentication to on-premises resources" (howto-authentication-passwordless-security-key-on-premises):
// Windows signs in to Active Directory with a partial TGT that Entra issues and a domain
// controller completes. The zero value is nothing set up.
type OnPremises struct {
	// KerberosServer: the Microsoft Entra Kerberos server object exists in the user's domain
	// (Set-AzureADKerberosServer), so Entra can issue partial TGTs for it.
	KerberosServer bool
	// PatchedDCs: a writable domain controller on Windows Server 2016 or later with the updates
	// the article lists (KB4534307, KB4534321) answers in the user's site.
	PatchedDCs bool
}

// Ready reports whether security-key sign-in reaches Active Directory.
func (o OnPremises) Ready() bool { return o.KerberosServer && o.PatchedDCs }

// HelloForBusiness is the Intune "Configure Windows Hello for Business" setting of the device.
type HelloForBusiness string

// Windows Hello for Business settings.
const (
	WHfBNotConfigured HelloForBusiness = "not-configured"
	WHfBEnabled       HelloForBusiness = "enabled"
	WHfBDisabled      HelloForBusiness = "disabled"
)

// Config is a device for one case.
type Config struct {
	Version Version
	Join    Join
	Enable  Enablement
	// SharedPC is EnableSharedPCMode (needed with a provisioning package on 1903).
	SharedPC bool
	// ProvisionedBeforePolicy: the device was provisioned before the Intune WHfB setting was
	// made, which therefore never reaches it.
	ProvisionedBeforePolicy bool
	// Online is the initial network state.
	Online bool
	Tenant Tenant
	// OnPrem is the on-premises set-up a hybrid joined device needs (ignored for other joins).
	OnPrem OnPremises
	// HelloForBusiness is Windows Hello for Business on the device ("" = not configured); the
	// document says security-key sign-in does not depend on it.
	HelloForBusiness HelloForBusiness
	// Probes are extra requests a field report says Windows sends on some path, turned on for this
	// case (ProbeBrowserPreflight, ProbeSilentUP); the Windows model sends them, a real Windows
	// does what it does.
	Probes []string
}

// Action is one thing the user (or an admin) does; Name is from the action vocabulary in
// docs/scenarios.md, the other fields are its parameters.
type Action struct {
	Name    string
	Account string            // who registers / is expected, for actions that name one
	PIN     string            // the PIN the user types ("" = none asked or none typed)
	NewPIN  string            // for change-pin and set-pin
	Pick    string            // account chosen in a WebAuthn account picker
	Args    map[string]string // anything else (e.g. "redirection": "true", "seconds": "11")
}

// Key is the security key a host talks to: in-process emulator, a served socket, later a real key.
type Key interface {
	// Client opens a CTAP client on the key, as a process opening its HID device does: a new
	// connection with its own CTAPHID channel, read through o.HID when the host has a HID stack
	// of its own (Windows' timeouts).
	Client(ctx context.Context, o ClientOptions) (*client.Client, error)
	// Replug unplugs and replugs the key (power-up: reset window and PIN power-cycle counter).
	Replug(ctx context.Context) error
	// Describe says what the key is, for reports.
	Describe() string
}

// ClientOptions say how a host opens a key.
type ClientOptions struct {
	// Record, when non-nil, sees every CTAP exchange (for reports).
	Record func(client.Exchange)
	// HID, when non-nil, wraps the report connection before CTAPHID runs on it: how the host's
	// HID stack reads the key. A connection that knows when the device produced each report is a
	// ctaphid.TimedReportConn (an in-process key; the times are on the key's clock, Clock.Now);
	// any other is read in wall time.
	HID func(ctaphid.ReportConn) ctaphid.ReportConn
}

// Clock is implemented by keys with a notion of time of their own (in-process emulators on a
// virtual clock): a `wait` action advances it instead of sleeping, so the 10 s reset window costs
// no wall time, and a host measures the key's silences on it. Hosts check for it with a type
// assertion and use the wall clock when a key lacks it.
type Clock interface {
	Now() time.Time
	Advance(d time.Duration)
}

// Target is where hosts run.
type Target interface {
	// Name is "model" or a VM description, for reports.
	Name() string
	// NewHost prepares a device for one case, talking to key.
	//
	// Hosts built on the same Key share one Entra tenant (users, registered credentials), as
	// devices of one organisation do: the runner registers a case's accounts through a reference
	// host (an up-to-date Entra joined device) and then runs the steps on the case's host with the
	// same Key. Each NewHost applies cfg.Tenant as the tenant's policy from then on.
	NewHost(ctx context.Context, cfg Config, key Key) (Host, error)
}

// Host is one Windows device during one case. It keeps state between actions (accounts that
// signed in online before, cached offline secrets, network state).
type Host interface {
	// Do performs one action and returns what the user sees, plus notes on the model's decisions.
	// An error means the action could not be performed at all (not a sign-in failure).
	Do(ctx context.Context, a Action) (result.Outcome, []string, error)
	Close() error
}
