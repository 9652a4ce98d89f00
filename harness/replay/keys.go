package replay

import (
	"context"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/harness/keyconn"
)

// Emulated gives each group a fresh emulated key of persona p, on a virtual clock.
func Emulated(p *persona.Persona) *EmulatedKeys { return &EmulatedKeys{p: p} }

// EmulatedKeys is Keys of fresh emulated keys; Close releases their shared signer.
type EmulatedKeys struct {
	p   *persona.Persona
	sig *signer.Signer
}

// Open makes a fresh key.
func (e *EmulatedKeys) Open(context.Context, string) (keyconn.Key, error) {
	if e.sig == nil {
		e.sig = signer.New()
	}
	return keyconn.NewEmulated(e.p, &keyconn.EmulatedOptions{Signer: e.sig})
}

// Fresh is true.
func (e *EmulatedKeys) Fresh() bool { return true }

// Close releases the signer.
func (e *EmulatedKeys) Close() {
	if e.sig != nil {
		e.sig.Close()
	}
}

// One replays every group against the same key, as it is.
func One(k keyconn.Key) Keys { return one{k} }

type one struct{ k keyconn.Key }

func (o one) Open(context.Context, string) (keyconn.Key, error) { return o.k, nil }
func (o one) Fresh() bool                                       { return false }
