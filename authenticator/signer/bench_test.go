package signer

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"
)

// benchKey returns the same key in both forms, so that stdlib and fast sign
// with identical inputs.
func benchKey(b *testing.B) (*ecdsa.PrivateKey, *PrivateKey, []byte) {
	b.Helper()
	key, err := GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	std, err := key.ECDSA()
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("benchmark clientDataHash || authenticatorData"))
	return std, key, digest[:]
}

// cpuTime is user+system CPU of the whole process, so a benchmark can report
// the refiller goroutine's work even when it runs on another core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSign is the request-path cost: stdlib against a warm pool.
func BenchmarkSign(b *testing.B) {
	std, key, digest := benchKey(b)
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			if _, err := ecdsa.SignASN1(rand.Reader, std, digest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		// The pool is refilled with the timer stopped, before it reaches the
		// low-water mark, so the refiller never runs during timed signing.
		s := New(WithPoolSize(4096))
		defer s.Close()
		avail := 0
		for b.Loop() {
			if avail == 0 {
				b.StopTimer()
				if err := s.Fill(); err != nil {
					b.Fatal(err)
				}
				avail = s.size - s.lowWater - 1
				b.StartTimer()
			}
			avail--
			if _, err := s.Sign(key, digest); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if st := s.Stats(); st.Misses != 0 {
			b.Fatalf("warm-pool benchmark took %d misses", st.Misses)
		}
	})
}

// BenchmarkSignSustained signs flat out with default pool settings, so the
// refiller's work (and any inline fallback) is in the measurement. ns/op is
// wall time per signature; cpu-ns/op adds the refiller's CPU on other cores.
func BenchmarkSignSustained(b *testing.B) {
	std, key, digest := benchKey(b)
	b.Run("stdlib", func(b *testing.B) {
		start := cpuTime()
		for b.Loop() {
			if _, err := ecdsa.SignASN1(rand.Reader, std, digest); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("fast", func(b *testing.B) {
		s := New() // starts cold: refill is part of the run
		defer s.Close()
		start := cpuTime()
		for b.Loop() {
			if _, err := s.Sign(key, digest); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		st := s.Stats()
		b.ReportMetric(float64(st.Misses)/float64(st.Hits+st.Misses), "miss-ratio")
	})
}
