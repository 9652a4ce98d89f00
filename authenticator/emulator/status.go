package emulator

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"go.yaml.in/yaml/v3"
)

// Status is what a person or a tool may know about a key: never a secret (no private key, PIN hash,
// token, master secret or credRandom), only what the key would reveal through credential management.
type Status struct {
	Persona      string           `json:"persona"`
	AAGUID       string           `json:"aaguid"`
	StatePath    string           `json:"statePath,omitempty"`
	Plugged      bool             `json:"plugged"`
	PIN          PINStatus        `json:"pin"`
	Settings     SettingsStatus   `json:"settings"`
	Resident     ResidentStatus   `json:"resident"`
	Credentials  []CredentialInfo `json:"credentials"`
	Fingerprints []string         `json:"fingerprints,omitempty"`
	User         string           `json:"user,omitempty"`
	Faults       *FaultState      `json:"faults,omitempty"`
	Knobs        *Knobs           `json:"knobs,omitempty"`
}

// FaultState is the fault knobs as the control API's /faults answers them, with how many
// requests a fault has been applied to so far.
type FaultState struct {
	FailNext []string `json:"failNext"`
	DelayMs  int64    `json:"delayMs"`
	Silent   int      `json:"silent"`
	Injected int      `json:"injected"`
}

// FaultState returns the fault knobs and the count of requests they were applied to.
func (k *Key) FaultState() FaultState {
	n := k.Knobs()
	k.fmu.Lock()
	injected := k.faults.injected
	k.fmu.Unlock()
	return FaultState{FailNext: n.FailNext, DelayMs: int64(n.ProcessingDelayMs), Silent: n.Silent, Injected: injected}
}

// PINStatus is the PIN state without the PIN.
type PINStatus struct {
	Set         bool `json:"set"`
	Retries     int  `json:"retries"`
	ForceChange bool `json:"forceChange"`
}

// SettingsStatus mirrors authenticatorConfig.
type SettingsStatus struct {
	AlwaysUV              bool     `json:"alwaysUv"`
	EnterpriseAttestation bool     `json:"enterpriseAttestation"`
	MinPINLength          int      `json:"minPinLength"`
	MinPINLengthRPIDs     []string `json:"minPinLengthRpIds,omitempty"`
}

// ResidentStatus counts discoverable credentials.
type ResidentStatus struct {
	Count    int `json:"count"`
	Capacity int `json:"capacity"`
}

// CredentialInfo describes one discoverable credential, newest first within its RP.
type CredentialInfo struct {
	ID              string `json:"id"`
	RPID            string `json:"rpId"`
	UserID          string `json:"userId"`
	UserName        string `json:"userName,omitempty"`
	UserDisplayName string `json:"userDisplayName,omitempty"`
	Alg             int    `json:"alg"`
	CredProtect     int    `json:"credProtect"`
	HMACSecret      bool   `json:"hmacSecret"`
	CredBlob        bool   `json:"credBlob"`
	Created         uint64 `json:"created"`
}

// Describe reads a key's state (running or not) into a Status.
func Describe(st store.Store, p *persona.Persona) (Status, error) {
	s := Status{Persona: p.Name, AAGUID: p.AAGUID.String(), Resident: ResidentStatus{Capacity: p.ResidentCapacity}}
	pin, err := st.PIN()
	if err != nil {
		return s, err
	}
	s.PIN = PINStatus{Set: pin.Set, Retries: pin.Retries, ForceChange: pin.ForceChange}
	set, err := st.Settings()
	if err != nil {
		return s, err
	}
	s.Settings = SettingsStatus{AlwaysUV: set.AlwaysUV, EnterpriseAttestation: set.EnterpriseAttestation,
		MinPINLength: set.MinPINLength, MinPINLengthRPIDs: set.MinPINLengthRPIDs}
	if s.Settings.MinPINLength == 0 {
		s.Settings.MinPINLength = p.MinPINLength
	}
	rps, err := st.ResidentRPs()
	if err != nil {
		return s, err
	}
	for _, rp := range rps {
		creds, err := st.Resident(rp.ID)
		if err != nil {
			return s, err
		}
		for _, c := range creds {
			s.Credentials = append(s.Credentials, CredentialInfo{
				ID: hex.EncodeToString(c.ID), RPID: c.RPID, UserID: hex.EncodeToString(c.UserID),
				UserName: c.UserName, UserDisplayName: c.UserDisplayName, Alg: c.Alg,
				CredProtect: int(c.CredProtect), HMACSecret: c.HMACSecret, CredBlob: len(c.CredBlob) > 0, Created: c.Created,
			})
		}
	}
	s.Resident.Count = len(s.Credentials)
	fps, err := st.Fingerprints()
	if err != nil {
		return s, err
	}
	for _, f := range fps {
		name := f.FriendlyName
		if name == "" {
			name = hex.EncodeToString(f.TemplateID)
		}
		s.Fingerprints = append(s.Fingerprints, name)
	}
	return s, nil
}

// Status describes the running key.
func (k *Key) Status() (Status, error) {
	s, err := Describe(k.Store, k.Persona)
	n := k.Knobs()
	fs := k.FaultState()
	s.StatePath, s.Plugged, s.User, s.Faults, s.Knobs = k.path, n.Plugged, k.User.String(), &fs, &n
	return s, err
}

// WriteText prints a Status for a person.
func (s Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "persona:\t%s (AAGUID %s)\n", s.Persona, s.AAGUID)
	if s.StatePath != "" {
		fmt.Fprintf(tw, "state:\t%s\n", s.StatePath)
	}
	pin := "not set"
	if s.PIN.Set {
		pin = "set"
		if s.PIN.ForceChange {
			pin += ", must be changed"
		}
	}
	fmt.Fprintf(tw, "PIN:\t%s, %d retries left\n", pin, s.PIN.Retries)
	fmt.Fprintf(tw, "settings:\talwaysUv=%t enterpriseAttestation=%t minPINLength=%d\n",
		s.Settings.AlwaysUV, s.Settings.EnterpriseAttestation, s.Settings.MinPINLength)
	fmt.Fprintf(tw, "discoverable credentials:\t%d of %d\n", s.Resident.Count, s.Resident.Capacity)
	if len(s.Fingerprints) > 0 {
		fmt.Fprintf(tw, "fingerprints:\t%s\n", strings.Join(s.Fingerprints, ", "))
	}
	if s.User != "" {
		fmt.Fprintf(tw, "simulated user:\t%s\n", s.User)
	}
	return tw.Flush()
}

// WriteCredentials prints the credential table for a person.
func (s Status) WriteCredentials(w io.Writer) error {
	if len(s.Credentials) == 0 {
		_, err := fmt.Fprintln(w, "no discoverable credentials")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RP\tUSER\tDISPLAY NAME\tCREDPROTECT\tHMAC-SECRET\tID")
	for _, c := range s.Credentials {
		id := c.ID
		if len(id) > 16 {
			id = id[:16] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%t\t%s\n", c.RPID, c.UserName, c.UserDisplayName, c.CredProtect, c.HMACSecret, id)
	}
	return tw.Flush()
}

// personaBlob is where a state file remembers the persona that created it.
const personaBlob = "emulator/persona"

// savePersona records p in the state, so a later `serve --state FILE` needs no --persona.
func savePersona(st store.Store, p *persona.Persona) error {
	b, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	return st.PutBlob(personaBlob, b)
}

// StoredPersona returns the persona recorded in a state, or nil when none was recorded.
func StoredPersona(st store.Store) (*persona.Persona, error) {
	b, err := st.Blob(personaBlob)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return persona.Parse(b, "persona recorded in the state file")
}

// sameIdentity reports whether the persona recorded in st, read for its name and AAGUID only, is p.
func sameIdentity(st store.Store, p *persona.Persona) bool {
	b, err := st.Blob(personaBlob)
	if err != nil {
		return false
	}
	var id struct {
		Name   string         `yaml:"name"`
		AAGUID persona.AAGUID `yaml:"aaguid"`
	}
	return yaml.Unmarshal(b, &id) == nil && id.Name == p.Name && id.AAGUID == p.AAGUID
}
