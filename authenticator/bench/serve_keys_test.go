package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/fleet"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/listener"
	"github.com/fidolab/fidolab/transport/socket"
)

// BenchmarkServeKeys is `fidolab serve --keys N` under load: one process serving N keys, each
// with its own state file (bbolt, in a temp dir) and its own Unix socket, sharing one signer
// (pool of 256, refilled while timed), answering getAssertion from N clients at once, each on
// its own key. ns/op is wall time per assertion, all keys together; assertions/s is the
// aggregate throughput; B/key (for 100 and 1000 keys) is the resident memory (RSS, file pages
// of the state files included) each idle key adds — measured after the keys are served and
// before any client connects; goroutines/key checks that an idle key holds nothing beyond its listener.
func BenchmarkServeKeys(b *testing.B) {
	var std stdlibRuns
	b.Run("stdlib-sign", func(b *testing.B) { stdlibSign(b, &std) })
	for _, n := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { serveKeysLoop(b, n, &std) })
	}
}

// rss is the process's resident set size in bytes (/proc/self/statm), after a GC that returns
// freed memory to the system, so that what stays is what is held.
func rss(b *testing.B) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(raw))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func serveKeysLoop(b *testing.B, n int, std *stdlibRuns) {
	// Each key keeps its state file and listener open, and each client adds a connection at
	// both ends.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(4*n+256) {
		b.Fatalf("%d keys need %d open files; the limit is %d (ulimit -n)", n, 4*n+256, lim.Cur)
	}
	dir := b.TempDir()
	goroutines := runtime.NumGoroutine()
	before := rss(b)

	f, err := fleet.Open(fleet.Options{N: n, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var serving sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		serving.Wait()
	})
	addrs := make([]string, n)
	for i, k := range f.Keys() {
		addrs[i] = "unix:" + filepath.Join(dir, fleet.Name(i+1)+".sock")
		l, err := listener.Listen(addrs[i], listener.Options{})
		if err != nil {
			b.Fatal(err)
		}
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := socket.Serve(ctx, l, k.Device); err != nil {
				b.Error(err)
			}
		}()
	}
	idle := rss(b)
	time.Sleep(10 * time.Millisecond) // let every Serve reach Accept
	// The keys share one goroutine: their signer's refiller.
	perKey := float64(runtime.NumGoroutine()-goroutines-1) / float64(n)
	if perKey > 1 {
		b.Fatalf("an idle key holds %.2f goroutines; only its listener's is expected", perKey)
	}

	// One client per key, each with a credential of its own.
	clients := make([]*ctaphid.Client, n)
	reqs := make([][]byte, n)
	var setup sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		setup.Add(1)
		sem <- struct{}{}
		go func() {
			defer setup.Done()
			defer func() { <-sem }()
			conn, err := socket.Dial(addrs[i])
			if err != nil {
				b.Error(err)
				return
			}
			b.Cleanup(func() { _ = conn.Close() })
			c := ctaphid.NewClient(conn)
			if _, err := c.Init(context.Background()); err != nil {
				b.Error(err)
				return
			}
			clients[i] = c
			k, _ := f.Key(i + 1)
			reqs[i] = getAssertionRequest(b, &rig{key: k, client: c})
		}()
	}
	setup.Wait()
	if b.Failed() {
		b.FailNow()
	}

	var next atomic.Int64
	var load sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for i := range n {
		load.Add(1)
		go func() {
			defer load.Done()
			for next.Add(1) <= int64(b.N) {
				resp, err := clients[i].CBOR(context.Background(), reqs[i])
				if err != nil || len(resp) == 0 || resp[0] != 0 {
					b.Errorf("key %d: %v %x", i+1, err, resp[:min(len(resp), 1)])
					return
				}
			}
		}()
	}
	load.Wait()
	b.StopTimer()
	cpu := cpuTime() - start
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "assertions/s")
	if n >= 100 {
		// One key's few KiB are below the noise of an RSS reading (a GC may return more than
		// it adds): the per-key figure is measured over many.
		b.ReportMetric(float64(idle-before)/float64(n), "B/key")
	}
	b.ReportMetric(perKey, "goroutines/key")
	reportRatio(b, std)
	reportCPURatio(b, std, cpu)
}
