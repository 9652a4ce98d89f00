package runner

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/stretchr/testify/require"
)

// servedKey is an emulated key served as `fidolab serve` serves it: a report socket and a control API.
type servedKey struct {
	k       *emulator.Key
	path    string // the socket's path
	sock    string // unix:PATH
	control string // HOST:PORT
}

func serveKey(t *testing.T) *servedKey {
	t.Helper()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := filepath.Join(t.TempDir(), "key.sock")
	l, err := socket.Listen("unix:" + sock)
	require.NoError(t, err)
	go func() { _ = socket.Serve(ctx, l, k.Device) }()
	cl, err := control.Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: control.Handler(k)}
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &servedKey{k: k, path: sock, sock: "unix:" + sock, control: cl.Addr().String()}
}

func (s *servedKey) spec(withControl bool) string {
	if withControl {
		return "socket:" + s.sock + ",control=" + s.control
	}
	return "socket:" + s.sock
}

// client opens a CTAP client on the served key, as a user's own tool would.
func (s *servedKey) client(t *testing.T, ctx context.Context) *client.Client {
	t.Helper()
	conn, err := socket.Dial(s.sock)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	hid := ctaphid.NewClient(conn)
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	return client.New(hid)
}

// fill gives the key what a user would have on it: a PIN and discoverable credentials of two sites.
func (s *servedKey) fill(t *testing.T, ctx context.Context, pin string, rps ...string) {
	t.Helper()
	c := s.client(t, ctx)
	require.NoError(t, c.SetPIN(ctx, pin))
	for i, rp := range rps {
		tok, err := c.GetPINToken(ctx, pin, ctap.PermMakeCredential, rp)
		require.NoError(t, err)
		cdh := sha256.Sum256([]byte(rp))
		_, err = c.MakeCredential(ctx, &ctap.MakeCredentialRequest{
			ClientDataHash: cdh[:], RP: &ctap.RPEntity{ID: rp},
			User:             &ctap.UserEntity{ID: []byte{byte(i + 1)}, Name: "user" + rp},
			PubKeyCredParams: []ctap.CredentialParam{{Type: "public-key", Alg: &es256}},
			Options:          &ctap.Options{RK: ctap.Bool(true)}, PinUvAuthParam: tok.Auth(cdh[:]),
			PinUvAuthProtocol: tok.ProtocolParam(),
		})
		require.NoError(t, err)
	}
}

func (s *servedKey) resident(t *testing.T) int {
	n, err := s.k.Store.CountResident()
	require.NoError(t, err)
	return n
}

// fakeAsker is the person at a terminal.
type fakeAsker struct {
	mu      sync.Mutex
	answer  bool
	asked   []string
	told    []string
	onTell  func(msg string)
	confirm error
}

func (a *fakeAsker) Confirm(_ context.Context, msg string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, msg)
	return a.answer, a.confirm
}

func (a *fakeAsker) Tell(msg string) {
	a.mu.Lock()
	a.told = append(a.told, msg)
	f := a.onTell
	a.mu.Unlock()
	if f != nil {
		f(msg)
	}
}

func TestExternalKeySpecs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec, err string
	}{
		{spec: "socket:/tmp/k.sock", err: "add ,control=HOST:PORT"},
		{spec: "socket:/x,colour=blue", err: `unknown option "colour=blue"`},
		{spec: "socket:/x,control=1:2,control=3:4", err: "unknown option"},
		{spec: "hidraw:dev/hidraw0", err: "want hidraw:/dev/hidrawN"},
		{spec: "usb:zz:0407", err: "not a 16-bit hex ID"},
		{spec: "floppy:/dev/fd0", err: `unknown kind "floppy"`},
		{spec: "/tmp/k.sock", err: "want socket:PATH"},
		{spec: "socket:/tmp/k.sock,control=127.0.0.1:1"},
		{spec: "socket:tcp:127.0.0.1:9,control=127.0.0.1:1"},
		{spec: "hidraw:/dev/hidraw0"},
		{spec: "hidraw:"},
		{spec: "hidraw:/dev/hidraw0,control=127.0.0.1:8765"},
	}
	for _, tt := range tests {
		f, err := External(tt.spec)
		if tt.err != "" {
			require.ErrorIs(t, err, ErrUsage, tt.spec)
			require.ErrorContains(t, err, tt.err, tt.spec)
			continue
		}
		require.NoError(t, err, tt.spec)
		require.True(t, f.Sequential())
		require.Equal(t, tt.spec, f.Describe())
	}
}

// TestExternalKeyRefusedWhenNotEmpty is issue 9 item 16: a served key holding a user's PIN and
// credentials is not reset without --destructive; every case is skipped with what would be erased,
// and the key keeps everything.
func TestExternalKeyRefusedWhenNotEmpty(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sk := serveKey(t)
	sk.fill(t, ctx, "246810", "login.microsoft.com", "example.com")

	keys, err := External(sk.spec(true))
	require.NoError(t, err)
	run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: keys, Filter: "two-accounts"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 2)
	for _, c := range run.Cases {
		require.Equal(t, result.Skipped, c.Verdict)
		require.Contains(t, c.Error, "a PIN is set (8 retries left)")
		require.Contains(t, c.Error, "at least 1 discoverable credential(s): login.microsoft.com (1)")
		require.Contains(t, c.Error, "--destructive not given")
		require.Empty(t, c.Steps, "nothing was done to the key")
	}
	require.False(t, run.OK(), "a run that skipped everything is not a pass")
	require.Equal(t, 2, run.Summary().Skipped)
	require.Equal(t, 2, sk.resident(t), "both credentials are still there")
	info, err := sk.client(t, ctx).GetInfo(ctx)
	require.NoError(t, err)
	require.True(t, info.Options["clientPin"], "the PIN is still set")

	// With the key's PIN, the refusal lists every site.
	keys, err = ExternalKey(sk.spec(true), KeyOptions{PIN: "246810"})
	require.NoError(t, err)
	run, err = Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: keys, Filter: "two-accounts"})
	require.NoError(t, err)
	require.Contains(t, run.Cases[0].Error, "2 discoverable credential(s): example.com (1), login.microsoft.com (1)")
	require.NotContains(t, run.Cases[0].Error, "at least")

	// A wrong PIN is tried once and said so; the key loses one retry, never more.
	keys, err = ExternalKey(sk.spec(true), KeyOptions{PIN: "000000"})
	require.NoError(t, err)
	run, err = Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: keys, Filter: "two-accounts"})
	require.NoError(t, err)
	require.Contains(t, run.Cases[0].Error, "wrong PIN; not retried")
	retries, _, err := sk.client(t, ctx).PINRetries(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, retries)
}

func TestExternalKeyDestructiveErases(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sk := serveKey(t)
	sk.fill(t, ctx, "246810", "example.com")
	keys, err := ExternalKey(sk.spec(true), KeyOptions{Destructive: true})
	require.NoError(t, err)
	run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: keys, Filter: "two-accounts"})
	require.NoError(t, err)
	for _, c := range run.Cases {
		require.Equal(t, result.Pass, c.Verdict, "%s@%s: %s\n%s", c.ID, c.Version, c.Error, describe(c))
	}
	require.Equal(t, 2, sk.resident(t), "example.com's credential is gone; alice and bob of the last case remain")
}

func TestExternalKeyAsksOnATerminal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, yes := range []bool{true, false} {
		sk := serveKey(t)
		sk.fill(t, ctx, "246810")
		ask := &fakeAsker{answer: yes}
		keys, err := ExternalKey(sk.spec(true), KeyOptions{Ask: ask})
		require.NoError(t, err)
		run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: keys, Filter: "two-accounts"})
		require.NoError(t, err)
		require.Len(t, ask.asked, 1, "asked once, before the first case")
		require.Contains(t, ask.asked[0], "a PIN is set (8 retries left)")
		for _, c := range run.Cases {
			if yes {
				require.Equal(t, result.Pass, c.Verdict, "%s: %s", c.ID, c.Error)
			} else {
				require.Equal(t, result.Skipped, c.Verdict)
				require.Contains(t, c.Error, "erasing it was declined")
			}
		}
	}
}

// TestExternalKeyEmptyNeedsNoPermission: a fresh key is run on without --destructive; a served key
// is reset before every case through its control API.
func TestExternalKeyEmptyNeedsNoPermission(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sk := serveKey(t)
	keys, err := External(sk.spec(true))
	require.NoError(t, err)
	run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: keys, Filter: "re:^(two-accounts|wrong-pin)$"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 3)
	for _, c := range run.Cases {
		require.Equal(t, result.Pass, c.Verdict, "%s@%s: %s\n%s", c.ID, c.Version, c.Error, describe(c))
	}
}

// plugDevice is a key a person replugs: the socket of a served key, whose "replug" is the
// emulator's power switch, flipped when the runner asks the person.
type plugDevice struct {
	sk      *servedKey
	replugs chan struct{}
}

func (d *plugDevice) dial(context.Context) (ctaphid.ReportConn, error) { return socket.Dial(d.sk.sock) }
func (d *plugDevice) describe() string                                 { return "test key" }
func (d *plugDevice) waitReplug(ctx context.Context) error {
	select {
	case <-d.replugs:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestKeyWithoutControl: a key no software can power-cycle. On a terminal the person is asked to
// replug it between cases that changed it; with nobody there, the first case runs on the empty key
// and the others are skipped with the reason, never run on a dirty key.
func TestKeyWithoutControl(t *testing.T) {
	t.Parallel()
	ctxT := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		sk := serveKey(t)
		dev := &plugDevice{sk: sk, replugs: make(chan struct{}, 1)}
		ask := &fakeAsker{}
		ask.onTell = func(msg string) {
			if strings.HasPrefix(msg, "Unplug the key") {
				require.NoError(t, sk.k.SetPlugged(false))
				require.NoError(t, sk.k.SetPlugged(true))
				dev.replugs <- struct{}{}
			}
		}
		f := &realFactory{spec: "hidraw:/dev/test", dev: dev, opts: KeyOptions{Ask: ask},
			power: &personPower{ask: ask, dev: dev, timeout: 10 * time.Second, clock: clock.Real{}}, clock: clock.Real{}}
		run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: f, Filter: "re:^(two-accounts|wrong-pin)$"})
		require.NoError(t, err)
		for _, c := range run.Cases {
			require.Equal(t, result.Pass, c.Verdict, "%s@%s: %s\n%s", c.ID, c.Version, c.Error, describe(c))
		}
		replugs := 0
		for _, m := range ask.told {
			if strings.HasPrefix(m, "Unplug the key") {
				replugs++
			}
		}
		require.Equal(t, 2, replugs, "the first case ran on the empty key; the two after it needed a replug")
	})

	t.Run("nobody", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		sk := serveKey(t)
		dev := &plugDevice{sk: sk}
		f := &realFactory{spec: "hidraw:/dev/test", dev: dev, power: noPower{}, clock: clock.Real{}}
		run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: f, Filter: "re:^(two-accounts|wrong-pin)$"})
		require.NoError(t, err)
		require.Equal(t, result.Pass, run.Cases[0].Verdict, "%s", run.Cases[0].Error)
		for _, c := range run.Cases[1:] {
			require.Equal(t, result.Skipped, c.Verdict)
			require.Contains(t, c.Error, "the key still holds")
			require.Contains(t, c.Error, "no control API")
		}
		require.Equal(t, 2, sk.resident(t), "the first case's accounts; nothing ran on top of them")
	})

	t.Run("nobody replugs", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		sk := serveKey(t)
		dev := &plugDevice{sk: sk, replugs: make(chan struct{})} // never replugged
		ask := &fakeAsker{}
		f := &realFactory{spec: "hidraw:/dev/test", dev: dev, opts: KeyOptions{Ask: ask},
			power: &personPower{ask: ask, dev: dev, timeout: 200 * time.Millisecond, clock: clock.Real{}}, clock: clock.Real{}}
		run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: f, Filter: "re:^(two-accounts|wrong-pin)$"})
		require.NoError(t, err)
		require.Equal(t, result.Pass, run.Cases[0].Verdict)
		for _, c := range run.Cases[1:] {
			require.Equal(t, result.Skipped, c.Verdict)
			require.Contains(t, c.Error, "nobody did within 200ms")
		}
	})

	t.Run("case needs a replug", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		sk := serveKey(t)
		f := &realFactory{spec: "hidraw:/dev/test", dev: &plugDevice{sk: sk}, power: noPower{}, clock: clock.Real{}}
		run, err := Run(ctx, loadTemp(t, fakeCatalog), Options{Target: fakeTarget{}, Keys: f, Filter: "reset-window"})
		require.NoError(t, err)
		require.Len(t, run.Cases, 1)
		require.Equal(t, result.Skipped, run.Cases[0].Verdict)
		require.Contains(t, run.Cases[0].Error, "the case needs the key unplugged and replugged")
	})
}

func TestChangesTellsReadsFromWrites(t *testing.T) {
	t.Parallel()
	enc := func(cmd ctap.Command, params any) []byte {
		b, err := ctap.Marshal(params)
		require.NoError(t, err)
		return append([]byte{byte(cmd)}, b...)
	}
	tests := []struct {
		ex      client.Exchange
		changes bool
	}{
		{client.Exchange{Cmd: ctap.CmdGetInfo, Request: []byte{4}}, false},
		{client.Exchange{Cmd: ctap.CmdGetAssertion}, false},
		{client.Exchange{Cmd: ctap.CmdClientPIN, Request: enc(ctap.CmdClientPIN, map[uint64]any{1: 2, 2: 1})}, false},
		{client.Exchange{Cmd: ctap.CmdClientPIN, Request: enc(ctap.CmdClientPIN, map[uint64]any{1: 2, 2: 3})}, true},
		{client.Exchange{Cmd: ctap.CmdClientPIN, Request: enc(ctap.CmdClientPIN, map[uint64]any{1: 2, 2: 5})}, true},
		{client.Exchange{Cmd: ctap.CmdClientPIN, Request: []byte{6, 0xff}}, true},
		{client.Exchange{Cmd: ctap.CmdLargeBlobs, Request: enc(ctap.CmdLargeBlobs, map[uint64]any{1: 100, 3: 0})}, false},
		{client.Exchange{Cmd: ctap.CmdLargeBlobs, Request: enc(ctap.CmdLargeBlobs, map[uint64]any{2: []byte{1}, 3: 0})}, true},
		{client.Exchange{Cmd: ctap.CmdMakeCredential}, true},
		{client.Exchange{Cmd: ctap.CmdReset, Command: "authenticatorReset"}, true},
		{client.Exchange{Cmd: ctap.CmdConfig}, true},
		{client.Exchange{U2F: true, Command: "U2F_REGISTER"}, false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.changes, changes(tt.ex) != "", "%+v", tt.ex)
	}
}

func TestInspectEmptyAndU2F(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sk := serveKey(t)
	c, err := Inspect(ctx, sk.client(t, ctx), "")
	require.NoError(t, err)
	require.True(t, c.Empty(), "%v", c.Lines())
	require.Empty(t, c.Lines())
	require.False(t, errors.Is(err, ErrUsage))
}
