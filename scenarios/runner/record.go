package runner

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// recKey wraps a case's key so that every exchange any host makes on it, through any client it
// opened at any time, lands in the step being performed.
type recKey struct {
	Key
	ctx         context.Context // the case's: a wait on an external key ends with it
	clock       clock.Clock     // the runner's
	noExchanges bool            // Options.NoExchanges
	mu          sync.Mutex
	sink        func(client.Exchange)
	mark        func(text string) // Options.Mark bound to the case, nil when unset
}

// markf tells Options.Mark what the case does next.
func (k *recKey) markf(format string, a ...any) {
	if k.mark != nil {
		k.mark(strings.TrimSpace(fmt.Sprintf(format, a...)))
	}
}

// Replug marks the power-up, then replugs the key.
func (k *recKey) Replug(ctx context.Context) error {
	k.markf("key replugged")
	return k.Key.Replug(ctx)
}

func (k *recKey) Client(ctx context.Context, o host.ClientOptions) (*client.Client, error) {
	rec := o.Record
	o.Record = func(e client.Exchange) {
		if rec != nil {
			rec(e)
		}
		k.mu.Lock()
		s := k.sink
		k.mu.Unlock()
		if s != nil {
			s(e)
		}
	}
	return k.Key.Client(ctx, o)
}

// capture routes exchanges to s until the returned function is called.
func (k *recKey) capture(s *result.Step) func() {
	if k.noExchanges {
		return func() {}
	}
	var (
		mu     sync.Mutex
		closed bool // the step is over: a late exchange is dropped, never appended while it is read
	)
	k.mu.Lock()
	k.sink = func(e client.Exchange) {
		mu.Lock()
		if !closed {
			s.Exchanges = append(s.Exchanges, toResult(e))
		}
		mu.Unlock()
	}
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		k.sink = nil
		k.mu.Unlock()
		mu.Lock()
		closed = true
		mu.Unlock()
	}
}

// SkipReason passes on the key's reason to skip the case (a real key that needed a replug nobody
// could do), "" when it has none.
func (k *recKey) SkipReason() string {
	if s, ok := k.Key.(interface{ SkipReason() string }); ok {
		return s.SkipReason()
	}
	return ""
}

// Now is the key's clock (host.Clock), or the runner's for a key without a clock of its own.
func (k *recKey) Now() time.Time {
	if c, ok := k.Key.(host.Clock); ok {
		return c.Now()
	}
	return k.clock.Now()
}

// Advance moves the key's clock (host.Clock); a key without a clock of its own waits on the
// runner's.
func (k *recKey) Advance(d time.Duration) {
	if c, ok := k.Key.(host.Clock); ok {
		c.Advance(d)
		return
	}
	_ = k.clock.Sleep(k.ctx, d)
}

// AttestationRoots are the in-process key's attestation root (none for other keys), so a model
// tenant trusts the emulator's test CA as Entra trusts a vendor's root from FIDO MDS
// (winmodel.RootedKey).
func (k *recKey) AttestationRoots() []*x509.Certificate {
	if r, ok := k.Key.(interface{ AttestationRoot() *x509.Certificate }); ok && r.AttestationRoot() != nil {
		return []*x509.Certificate{r.AttestationRoot()}
	}
	return nil
}

// toResult converts a client exchange into its report form: decoded, secrets redacted.
func toResult(e client.Exchange) result.Exchange {
	r := result.Exchange{Command: e.Command, Duration: e.Duration}
	switch {
	case e.Err != nil:
		r.Status = "transport error: " + e.Err.Error()
	case e.U2F:
		r.Status = fmt.Sprintf("SW %04X", e.SW)
	default:
		r.Status = e.Status.String()
	}
	// Describe is the one place that knows where secrets sit; its lines are split, not rebuilt.
	var resp []string
	for _, line := range strings.Split(e.Describe(), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "request:"):
			r.Request = strings.TrimSpace(strings.TrimPrefix(t, "request:"))
		case strings.HasPrefix(t, "response:"):
			resp = append(resp, strings.TrimSpace(strings.TrimPrefix(t, "response:")))
		case strings.HasPrefix(t, "authData:"):
			resp = append(resp, t)
		}
	}
	r.Response = r.Status
	if len(resp) > 0 {
		r.Response += " " + strings.Join(resp, "\n")
	}
	return r
}
