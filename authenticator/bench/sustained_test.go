package bench

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// cpuTime is user+system CPU of the whole process: the refiller's work on the other core and
// the server goroutines count, not only the benchmark's goroutine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPURatio adds cpu-ns/op (process CPU per op) and cpu-stdlib-signs/op, the same in units
// of the CPU of one stdlib signature measured earlier in the run.
func reportCPURatio(b *testing.B, std *stdlibRuns, cpu time.Duration) {
	if b.N == 0 {
		return
	}
	perOp := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp, "cpu-ns/op")
	if stdCPU := std.medianCPU(); stdCPU > 0 {
		b.ReportMetric(perOp/stdCPU, "cpu-stdlib-signs/op")
	}
}

// sustainedLoop is the cost of an assertion under load: getAssertions back to back on a key with
// the signer a served key has (pool of 256, refilled in batches of 32 when half empty) and
// nothing refilled outside the timer, so the refiller's CPU on the other core and every nonce a
// request computes itself when the pool is dry are in the measurement. It starts from the steady
// state: the first 2×256 requests, which the full pool of a key that was idle would serve, are
// not timed. cpu-stdlib-signs/op is the target's measure (CPU per assertion in stdlib
// signatures); stdlib-signs/op (wall time) hides the refiller's work on the other core.
func sustainedLoop(b *testing.B, std *stdlibRuns) {
	s := signer.New()
	b.Cleanup(s.Close)
	k, err := emulator.Open(emulator.Options{Signer: s, StatePath: filepath.Join(b.TempDir(), "key.state")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = k.Close() })
	conn := k.Connect()
	b.Cleanup(func() { _ = conn.Close() })
	c := ctaphid.NewClient(conn)
	if _, err := c.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	req := getAssertionRequest(b, &rig{key: k, sig: s, client: c})
	for range 2 * signer.DefaultPoolSize {
		transact(b, c, req)
	}
	before := s.Stats()
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		transact(b, c, req)
	}
	cpu := cpuTime() - start
	b.StopTimer()
	after := s.Stats()
	if hits, misses := after.Hits-before.Hits, after.Misses-before.Misses; hits+misses > 0 {
		b.ReportMetric(float64(misses)/float64(hits+misses), "miss-ratio")
	}
	reportRatio(b, std)
	reportCPURatio(b, std, cpu)
}
