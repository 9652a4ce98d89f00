package winmodel

import (
	"context"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/stretchr/testify/require"
)

// emuKey is a host.Key on an in-process emulator key, as the runner provides.
type emuKey struct {
	k     *emulator.Key
	clock *clock.Virtual
	mu    sync.Mutex
	conns []interface{ Close() error }
	ex    []client.Exchange
}

func (e *emuKey) Client(ctx context.Context, o host.ClientOptions) (*client.Client, error) {
	var conn ctaphid.ReportConn = e.k.Connect()
	if o.HID != nil {
		conn = o.HID(conn)
	}
	rec := o.Record
	e.mu.Lock()
	e.conns = append(e.conns, conn)
	e.mu.Unlock()
	hid := ctaphid.NewClient(conn)
	if _, err := hid.Init(ctx); err != nil {
		return nil, err
	}
	return client.New(hid, client.WithRecorder(func(x client.Exchange) {
		e.mu.Lock()
		e.ex = append(e.ex, x)
		e.mu.Unlock()
		if rec != nil {
			rec(x)
		}
	})), nil
}

func (e *emuKey) Replug(context.Context) error {
	if err := e.k.SetPlugged(false); err != nil {
		return err
	}
	return e.k.SetPlugged(true)
}

// Now and Advance make the key's virtual clock the host's (host.Clock), as the runner's keys do.
func (e *emuKey) Now() time.Time          { return e.clock.Now() }
func (e *emuKey) Advance(d time.Duration) { e.clock.Advance(d) }

func (e *emuKey) Describe() string { return "in-process persona " + e.k.Persona.Name }

func (e *emuKey) AttestationRoots() []*x509.Certificate {
	if r := e.k.Auth.AttestationRoot(); r != nil {
		return []*x509.Certificate{r}
	}
	return nil
}

// commands lists the CTAP commands sent since the mark.
func (e *emuKey) commands(from int) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, x := range e.ex[from:] {
		out = append(out, x.Command)
	}
	return out
}

func (e *emuKey) mark() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.ex)
}

func newKey(t *testing.T, personaYAML string) *emuKey {
	t.Helper()
	var (
		p   *persona.Persona
		err error
	)
	if personaYAML == "" {
		p, err = persona.Builtin("default")
	} else if b, berr := persona.Builtin(personaYAML); berr == nil {
		p = b
	} else {
		p, err = persona.Parse([]byte(personaYAML), "test persona")
	}
	require.NoError(t, err)
	v := clock.NewVirtual(time.Date(2026, 3, 6, 9, 0, 0, 0, time.UTC))
	k, err := emulator.Open(emulator.Options{Persona: p, Clock: v})
	require.NoError(t, err)
	e := &emuKey{k: k, clock: v}
	t.Cleanup(func() {
		for _, c := range e.conns {
			_ = c.Close()
		}
		_ = k.Close()
	})
	return e
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func goodConfig() host.Config {
	v, _ := host.ParseVersion("11-24H2")
	return host.Config{Version: v, Join: host.JoinEntra, Enable: host.EnableIntuneOMA, Online: true}
}

func newHost(t *testing.T, cfg host.Config, k *emuKey) *Host {
	t.Helper()
	h, err := New().NewHost(testCtx(t), cfg, k)
	require.NoError(t, err)
	return h.(*Host)
}

// do runs an action and fails the test on a Go error.
func do(t *testing.T, h *Host, a host.Action) (result.Outcome, []string) {
	t.Helper()
	out, notes, err := h.Do(testCtx(t), a)
	require.NoError(t, err, "action %s", a.Name)
	return out, notes
}

func register(t *testing.T, h *Host, accounts ...string) {
	t.Helper()
	for _, acc := range accounts {
		out, notes := do(t, h, host.Action{Name: host.ActRegister, Account: acc, PIN: "1234"})
		require.Equal(t, result.Outcome{Kind: host.KindRegistered, Account: acc}.String(), out.String(), "%s: %v", out.Reason, notes)
	}
}

type emuKnobs = emulator.Knobs
