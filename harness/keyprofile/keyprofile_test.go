package keyprofile

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/stretchr/testify/require"
)

// getInfoOf asks a fresh emulated key of persona p for its getInfo.
func profileOf(t *testing.T, p *persona.Persona) *Profile {
	t.Helper()
	k, err := keyconn.NewEmulated(p, nil)
	require.NoError(t, err)
	defer k.Close()
	c, _, init, conn, err := keyconn.Client(context.Background(), k)
	require.NoError(t, err)
	defer conn.Close()
	info, err := c.GetInfo(context.Background())
	require.NoError(t, err)
	hid := p.HID
	return &Profile{Info: info, HID: &hid, U2F: p.U2F, Name: p.Name, Description: p.Description,
		Device:      &DeviceInfo{init.Major, init.Minor, init.Build, init.Capabilities},
		Attestation: p.Attestation, Subject: &p.AttestationSubject, ResidentCapacity: p.ResidentCapacity,
		MaxFingerprints: p.MaxFingerprints, EnrollSamples: p.EnrollSamples, Algorithms: p.Algorithms,
		Quirks:      p.Quirks, // what a destructive probe measures
		QuirksKnown: []string{"oldestFirst", "noKeepalive", "resetWindowSeconds", "processingDelayMs", "pinRetriesWithoutPin"}}
}

// TestPersonaFromGetInfoIsTheBuiltin: a persona built from what a host sees of each CTAP2 built-in
// persona (plus what a probe measures) is that persona again, and survives being written and read.
func TestPersonaFromGetInfoIsTheBuiltin(t *testing.T) {
	t.Parallel()
	for _, name := range persona.Names() {
		want, err := persona.Builtin(name)
		require.NoError(t, err)
		if !want.CTAP2 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, guesses := profileOf(t, want).Persona()
			for _, g := range guesses { // a CTAP 2.0 getInfo has no minPINLength
				require.True(t, g.Field == "minPinLength" && !want.Has("FIDO_2_1"), "guess %v", g)
			}
			if !want.Has("FIDO_2_1") {
				want.FirmwareVersion = 0 // a CTAP 2.0 getInfo does not tell it, and nothing else does
			}
			require.Equal(t, want, got)
			var buf bytes.Buffer
			require.NoError(t, WritePersona(&buf, got, guesses, "mirrors "+name))
			back, err := persona.Parse(buf.Bytes(), "out.yaml")
			require.NoError(t, err, buf.String())
			require.Equal(t, want, back)
			require.Contains(t, buf.String(), "vendorId: 0x1209")
		})
	}
}

// TestGuessesAreMarked: what getInfo does not say is guessed, valid, and marked in the file.
func TestGuessesAreMarked(t *testing.T) {
	t.Parallel()
	p, _ := persona.Builtin("ctap20")
	pr := profileOf(t, p)
	pr.HID, pr.Attestation, pr.Subject, pr.ResidentCapacity, pr.Algorithms, pr.QuirksKnown = nil, "", nil, 0, nil, nil
	pr.Info.MaxCredentialIDLength = 0
	got, guesses := pr.Persona()
	require.NoError(t, got.Validate())
	fields := map[string]bool{}
	for _, g := range guesses {
		fields[g.Field] = true
	}
	for _, f := range []string{"hid", "attestation", "residentCapacity", "algorithms", "maxCredentialIdLength", "quirks.oldestFirst"} {
		require.True(t, fields[f], "no guess for %s: %v", f, guesses)
	}
	var buf bytes.Buffer
	require.NoError(t, WritePersona(&buf, got, guesses, "test"))
	require.Contains(t, buf.String(), "# GUESS: not observed: 25")
	require.Equal(t, strings.Count(buf.String(), "GUESS:"), len(guesses))
	_, err := persona.Parse(buf.Bytes(), "out.yaml")
	require.NoError(t, err)
}
