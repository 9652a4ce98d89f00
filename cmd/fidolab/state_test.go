package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runBin runs the real binary and returns its exit code and combined output.
func runBin(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fidolabBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	require.NoError(t, err, "%s", out)
	return 0, string(out)
}

// requireNoCrash fails on anything a Go runtime crash prints.
func requireNoCrash(t *testing.T, out string) {
	t.Helper()
	for _, sign := range []string{"goroutine ", "fatal error", "SIGBUS", "SIGSEGV", "panic:", "unexpected fault"} {
		require.NotContains(t, out, sign)
	}
}

// TestDamagedStateFileIsAClearError runs the real binary on truncated and bit-flipped copies of a
// real state file: exit code 1 and "state file damaged: …" naming the file, never a runtime dump
// (truncations of 8 to 20 KiB died with SIGBUS, flipped bits in data pages with SIGSEGV).
func TestDamagedStateFileIsAClearError(t *testing.T) {
	t.Parallel()
	orig, err := os.ReadFile(seedState(t, "alice", "bob"))
	require.NoError(t, err)
	dir := t.TempDir()
	for _, n := range []int{8 << 10, 12 << 10, 16 << 10, 20 << 10} {
		path := filepath.Join(dir, "cut.state")
		require.NoError(t, os.WriteFile(path, orig[:n], 0o600))
		for _, args := range [][]string{
			{"key", "info", "--state", path},
			{"serve", "--state", path, "--listen", "unix:" + filepath.Join(dir, "k.sock")},
		} {
			code, out := runBin(t, nil, args...)
			requireNoCrash(t, out)
			require.Equal(t, 1, code, "cut at %d: %s", n, out)
			require.Contains(t, out, path, "the message names the file")
			require.Contains(t, out, "state file damaged: truncated", "cut at %d", n)
		}
	}

	rng := rand.New(rand.NewPCG(11, 12))
	var refused int
	for i := range 40 {
		data := bytes.Clone(orig)
		for range 1 + rng.IntN(3) {
			data[2*4096+rng.IntN(len(data)-2*4096)] ^= byte(1 + rng.IntN(255)) // data pages
		}
		path := filepath.Join(dir, "flipped.state")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		code, out := runBin(t, nil, "key", "list", "--state", path)
		requireNoCrash(t, out)
		require.Contains(t, []int{0, 1}, code, "flip %d: %s", i, out)
		if code == 1 {
			refused++
			require.True(t, strings.Contains(out, "state file damaged") || strings.Contains(out, "corrupt record"), out)
		}
	}
	require.Positive(t, refused)
}

func TestEmptyStateFileIsNotANewKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.state")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	code, out := runBin(t, nil, "serve", "--state", path, "--listen", "unix:"+filepath.Join(t.TempDir(), "k.sock"))
	require.Equal(t, 1, code, out)
	require.Contains(t, out, path)
	require.Contains(t, out, "not a fidolab state file: the file is empty (0 bytes)")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Zero(t, fi.Size(), "the file was left as it was")
}

func writeKeyFile(t *testing.T, b byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.key")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte{b}, 32), 0o600))
	return path
}

func TestSealedStateFile(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "key.state")
	key, wrong := writeKeyFile(t, 1), writeKeyFile(t, 2)

	s := startServe(t, "--state", state, "--state-key-file", key)
	c := s.connect(t)
	_, err := c.MakeCredential(context.Background(), mkReq("example.com", "alice"))
	require.NoError(t, err)
	require.NoError(t, s.cmd.Process.Signal(os.Interrupt))
	require.NoError(t, s.cmd.Wait())

	code, out := runBin(t, nil, "key", "list", "--state", state)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "sealed: give its key with --state-key-file")
	code, out = runBin(t, nil, "key", "list", "--state", state, "--state-key-file", wrong)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "sealed with a different key")
	code, out = runBin(t, []string{"FIDOLAB_STATE_KEY_FILE=" + key}, "key", "info", "--state", state)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "sealed:                    yes")
	code, out = runBin(t, nil, "key", "list", "--state", state, "--state-key-file", key)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "alice")

	code, out = runBin(t, nil, "serve", "--state-key-file", key)
	require.Equal(t, 2, code, "a key file without a state file is a usage error: %s", out)
	require.NoError(t, os.Chmod(key, 0o644))
	code, out = runBin(t, nil, "key", "info", "--state", state, "--state-key-file", key)
	require.Equal(t, 1, code)
	require.Contains(t, out, "want 0600 or 0400")
}

func TestKeySealConvertsAPlainState(t *testing.T) {
	t.Parallel()
	state := seedState(t, "alice")
	key := writeKeyFile(t, 3)
	code, out := runBin(t, nil, "key", "seal", "--state", state)
	require.Equal(t, 2, code, "seal without a key: %s", out)
	code, out = runBin(t, nil, "key", "list", "--state", state, "--state-key-file", key)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "not sealed")
	code, out = runBin(t, nil, "key", "seal", "--state", state, "--state-key-file", key)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "sealed "+state)
	code, out = runBin(t, nil, "key", "list", "--state", state)
	require.Equal(t, 1, code, out)
	code, out = runBin(t, nil, "key", "list", "--state", state, "--state-key-file", key)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "alice")
}
