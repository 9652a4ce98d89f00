package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/stretchr/testify/require"
)

// crashLog is what the key acknowledged before it was killed: only what a client saw succeed.
type crashLog struct {
	mu          sync.Mutex
	creds       map[string]string // credential ID (hex) → user name
	maxCounter  uint32
	pinRetries  int   // last acknowledged PIN retry count
	pinInFlight bool  // a PIN attempt was sent but not answered when the key died
	inFlightOK  bool  // … and it was the right PIN
	refused     error // a CTAP error status: the key said no, which a kill never causes
}

// failed records err when it is the key's answer rather than the connection dying.
func (l *crashLog) failed(err error) {
	var st ctap.Status
	if errors.As(err, &st) {
		l.mu.Lock()
		if l.refused == nil {
			l.refused = err
		}
		l.mu.Unlock()
	}
}

// TestKillServeLoop SIGKILLs a real `fidolab serve` at random moments while a client registers
// resident credentials, asserts and makes PIN attempts, and checks after every kill that nothing
// acknowledged was lost and that the signature counter only grew.
func TestKillServeLoop(t *testing.T) {
	bin := fidolabBinary(t)
	state := filepath.Join(t.TempDir(), "crash.state")
	const pin = "4321"
	log := &crashLog{creds: map[string]string{}, pinRetries: 8}
	// Room for every credential the loop makes: a full key would stop the writes early.
	personaFile := filepath.Join(t.TempDir(), "roomy.yaml")
	require.NoError(t, os.WriteFile(personaFile, []byte("base: default\nname: roomy\naaguid: 6f1a7b3e-0c1d-4e5f-9a8b-f1d0a11ab0ff\nresidentCapacity: 100000\n"), 0o600))
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range rounds {
		s := startServe(t, "--state", state, "--persona", personaFile)
		c := s.connect(t)
		ctx, cancel := context.WithCancel(context.Background())
		if round == 0 {
			require.NoError(t, c.SetPIN(ctx, pin))
		}
		// What the key holds now must include everything acknowledged before the last kill.
		retries, _, err := c.PINRetries(ctx)
		require.NoError(t, err)
		log.checkPIN(t, retries)
		log.pinRetries, log.pinInFlight = retries, false

		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.work(ctx, c, round, pin)
		}()
		time.Sleep(time.Duration(150+rng.IntN(450)) * time.Millisecond)
		require.NoError(t, s.cmd.Process.Kill())
		_ = s.cmd.Wait()
		cancel()
		wg.Wait()

		// Offline check of the state file: every acknowledged credential is there.
		out, err := exec.Command(bin, "key", "list", "--state", state, "--json").CombinedOutput()
		require.NoError(t, err, "%s", out)
		var listed []struct {
			ID       string `json:"id"`
			UserName string `json:"userName"`
		}
		require.NoError(t, json.Unmarshal(out, &listed))
		have := map[string]bool{}
		for _, l := range listed {
			have[l.ID] = true
		}
		log.mu.Lock()
		require.NoError(t, log.refused, "round %d: the key refused a request", round)
		for id, name := range log.creds {
			require.True(t, have[id], "round %d: acknowledged credential of %s lost", round, name)
		}
		n := len(log.creds)
		log.mu.Unlock()
		t.Logf("round %d: %d credentials acknowledged so far, counter %d", round, n, log.maxCounter)
	}
	// A last start: the counter continues above every acknowledged value.
	s := startServe(t, "--state", state, "--persona", personaFile)
	c := s.connect(t)
	ctx := context.Background()
	log.mu.Lock()
	var anyID []byte
	for id := range log.creds {
		anyID, _ = hex.DecodeString(id)
		break
	}
	log.mu.Unlock()
	require.NotNil(t, anyID, "the client never got a credential acknowledged")
	a, err := c.GetAssertion(ctx, &ctap.GetAssertionRequest{RPID: "crash.example", ClientDataHash: make([]byte, 32),
		AllowList: []ctap.CredentialDescriptor{{ID: anyID, Type: ctap.CredentialTypePublicKey}}})
	require.NoError(t, err)
	require.Greater(t, a.AuthData.SignCount, log.maxCounter, "signature counter went backwards after a crash")
}

func (l *crashLog) checkPIN(t *testing.T, now int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := now == l.pinRetries
	if l.pinInFlight {
		// An unanswered attempt may have been counted (decrement first, then compare), and if it
		// was the right PIN the counter may already be back at 8.
		ok = ok || now == l.pinRetries-1 || (l.inFlightOK && now == 8)
	}
	require.True(t, ok, "PIN retries %d after restart; last acknowledged %d (in flight: %t)", now, l.pinRetries, l.pinInFlight)
}

// work registers and asserts until the key dies. Each round begins with one wrong PIN.
func (l *crashLog) work(ctx context.Context, c *client.Client, round int, pin string) {
	l.pinAttempt(ctx, c, "0000", false)
	for j := 0; ctx.Err() == nil; j++ {
		tok, ok := l.pinAttempt(ctx, c, pin, true)
		if !ok {
			return
		}
		name := "user-" + time.Now().Format("150405.000000") + "-" + string(rune('a'+round))
		req := mkReq("crash.example", name)
		req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(req.ClientDataHash), tok.ProtocolParam()
		res, err := c.MakeCredential(ctx, req)
		if err != nil {
			l.failed(err)
			return
		}
		l.mu.Lock()
		l.creds[hex.EncodeToString(res.CredentialID)] = name
		l.mu.Unlock()
		a, err := c.GetAssertion(ctx, &ctap.GetAssertionRequest{RPID: "crash.example", ClientDataHash: make([]byte, 32),
			AllowList: []ctap.CredentialDescriptor{{ID: res.CredentialID, Type: ctap.CredentialTypePublicKey}}})
		if err != nil {
			l.failed(err)
			return
		}
		l.mu.Lock()
		if a.AuthData.SignCount <= l.maxCounter {
			l.mu.Unlock()
			panic("signature counter did not increase within one run")
		}
		l.maxCounter = a.AuthData.SignCount
		l.mu.Unlock()
	}
}

// pinAttempt asks for a token with pin and records what the key acknowledged.
func (l *crashLog) pinAttempt(ctx context.Context, c *client.Client, pin string, right bool) (*client.Token, bool) {
	l.mu.Lock()
	l.pinInFlight, l.inFlightOK = true, right
	l.mu.Unlock()
	tok, err := c.GetPINToken(ctx, pin, ctap.PermMakeCredential, "crash.example")
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.pinRetries, l.pinInFlight = 8, false
		return tok, true
	case !right && ctap.StatusOf(err) == ctap.ErrPINInvalid:
		l.pinRetries--
		l.pinInFlight = false
	case right:
		var st ctap.Status
		if errors.As(err, &st) && l.refused == nil {
			l.refused = err
		}
	}
	return nil, false
}
