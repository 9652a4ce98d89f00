// Package winmodel is the built-in behavioural model of Windows security-key sign-in: a host.Target
// whose hosts do over CTAP what Windows does, gated by the rules of the seed document.
package winmodel

import (
	"context"
	"errors"

	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// Option configures the model.
type Option func(*Target)

// Target is the model host.Target.
type Target struct{}

// New returns the model Target.
func New(opts ...Option) host.Target {
	t := &Target{}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Name is "model".
func (t *Target) Name() string { return "model" }

// NewHost prepares a modelled device.
func (t *Target) NewHost(ctx context.Context, cfg host.Config, key host.Key) (host.Host, error) {
	return &stubHost{}, nil
}

type stubHost struct{}

func (h *stubHost) Do(ctx context.Context, a host.Action) (result.Outcome, []string, error) {
	return result.Outcome{}, nil, errors.New("winmodel: not implemented yet")
}

func (h *stubHost) Close() error { return nil }
