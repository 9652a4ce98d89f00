package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The crash test re-executes this test binary as a writer process; these variables tell it so.
const (
	crashPathEnv  = "FIDOLAB_STORE_CRASH_PATH"
	crashStartEnv = "FIDOLAB_STORE_CRASH_START"
	crashRP       = "crash.example"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashPathEnv); path != "" {
		start, _ := strconv.ParseUint(os.Getenv(crashStartEnv), 10, 64)
		crashWriter(path, start)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashPIN derives a PIN state from a sequence number, so the parent can tell which write it
// is looking at and that it is one the writer made.
func crashPIN(seq uint64) PIN {
	h := make([]byte, PINHashLen)
	binary.BigEndian.PutUint64(h, seq)
	return PIN{Set: true, Hash: h, CodePoints: 4, Retries: int(seq % 9)}
}

func crashCred(seq uint64) *Credential {
	return &Credential{
		ID:         []byte(fmt.Sprintf("crash-%d", seq)),
		RPID:       crashRP,
		UserID:     binary.BigEndian.AppendUint64(nil, seq),
		UserName:   fmt.Sprint("user ", seq),
		Alg:        -7,
		PrivateKey: binary.BigEndian.AppendUint64([]byte("key-"), seq),
	}
}

// crashWriter runs in the child: it writes until killed and reports each value on stdout only
// after the call returned, i.e. after the key would have acknowledged it. A line is complete
// only with its trailing ".", so a report cut short by the kill is ignored.
func crashWriter(path string, seq uint64) {
	s, err := OpenFile(path, WithCounterReserve(16), WithLockTimeout(10*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash writer:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stdout, "ready.")
	for ; ; seq++ {
		if err := s.PutResident(crashCred(seq)); err != nil {
			fmt.Fprintln(os.Stderr, "crash writer:", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "cred %d.\n", seq)
		if err := s.PutPIN(crashPIN(seq)); err != nil {
			fmt.Fprintln(os.Stderr, "crash writer:", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "pin %d.\n", seq)
		for range 5 {
			n, err := s.NextSignCount()
			if err != nil {
				fmt.Fprintln(os.Stderr, "crash writer:", err)
				os.Exit(2)
			}
			fmt.Fprintf(os.Stdout, "count %d.\n", n)
		}
	}
}

type crashAcks struct {
	creds    []uint64
	lastPIN  uint64
	maxCount uint32
	pinSeen  bool
}

func (a *crashAcks) parse(t *testing.T, out []byte) {
	t.Helper()
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasSuffix(line, ".") || line == "ready." {
			continue
		}
		var kind string
		var v uint64
		_, err := fmt.Sscanf(strings.TrimSuffix(line, "."), "%s %d", &kind, &v)
		require.NoError(t, err, line)
		switch kind {
		case "cred":
			a.creds = append(a.creds, v)
		case "pin":
			a.lastPIN, a.pinSeen = v, true
		case "count":
			require.Greater(t, uint32(v), a.maxCount, "the writer saw its own counter go back")
			a.maxCount = uint32(v)
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

// TestCrashKill9 kills a writer process at random moments, then checks that everything it
// acknowledged is in the file and the signature counter continues above every value it
// handed out.
func TestCrashKill9(t *testing.T) {
	t.Parallel()
	iterations := 20
	if testing.Short() {
		iterations = 5
	}
	path := filepath.Join(t.TempDir(), "key.db")
	seed := rand.Uint64()
	t.Logf("kill timing seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	var acks crashAcks
	for it := range iterations {
		start := uint64(it+1) * 1_000_000
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashPathEnv+"="+path, crashStartEnv+"="+strconv.FormatUint(start, 10))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		r := bufio.NewReader(stdout)
		if ready, err := r.ReadString('\n'); err != nil || ready != "ready.\n" {
			_ = cmd.Wait() // stderr is complete only after Wait
			t.Fatalf("writer did not start (%v): %s", err, stderr.String())
		}
		time.Sleep(time.Duration(1+rng.IntN(150)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		out, err := io.ReadAll(r)
		require.NoError(t, err)
		_ = cmd.Wait() // "signal: killed" is the expected outcome
		require.NotContains(t, stderr.String(), "crash writer:")
		acks.parse(t, out)

		crashVerify(t, path, &acks)
	}
	t.Logf("%d kills, %d credentials, last PIN %d, max counter %d acknowledged", iterations, len(acks.creds), acks.lastPIN, acks.maxCount)
	require.Greater(t, len(acks.creds), iterations, "the writer must have acknowledged work to check")
}

func crashVerify(t *testing.T, path string, acks *crashAcks) {
	t.Helper()
	s, err := OpenFile(path, WithLockTimeout(10*time.Second))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()

	var prevCreated uint64
	for _, seq := range acks.creds {
		want := crashCred(seq)
		got, err := s.ResidentByID(want.ID)
		require.NoError(t, err, "acknowledged credential %d lost", seq)
		require.Equal(t, want.UserID, got.UserID)
		require.Equal(t, want.PrivateKey, got.PrivateKey)
		require.Greater(t, got.Created, prevCreated, "creation order follows acknowledgement order")
		prevCreated = got.Created
	}
	list, err := s.Resident(crashRP)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(list), len(acks.creds))

	if acks.pinSeen {
		p, err := s.PIN()
		require.NoError(t, err)
		stored := binary.BigEndian.Uint64(p.Hash)
		// The stored PIN is the last acknowledged one or a later write the kill cut short of
		// its acknowledgement, never an older one.
		require.GreaterOrEqual(t, stored, acks.lastPIN, "PIN state rolled back (hash %s)", hex.EncodeToString(p.Hash[:8]))
		require.Equal(t, crashPIN(stored), p)
	}

	n, err := s.NextSignCount()
	require.NoError(t, err)
	require.Greater(t, n, acks.maxCount, "signature counter repeated after a crash")
}
