package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/transport/socket"
)

const rpID = "bench.example"

// poolSize is large so that the timed loop runs many requests between refills; refills happen
// with the timer stopped, so "warm pool" numbers never include nonce generation.
const poolSize = 4096

// rig is one key with a warm shared signer and a connected, initialised host client.
type rig struct {
	key    *emulator.Key
	sig    *signer.Signer
	client *ctaphid.Client
	avail  int // signatures left before the pool must be topped up outside the timer
}

type backing int

const (
	fileStore backing = iota // bbolt state file in b.TempDir(): the durable configuration
	memStore
	sealedFileStore // fileStore sealed with a state key (--state-key-file)
)

// newRig opens a key on the given store. connect returns the host side of a transport to the
// key's device; nil means in-process.
func newRig(b *testing.B, st backing, connect func(*emulator.Key) ctaphid.ReportConn) *rig {
	b.Helper()
	s := signer.New(signer.WithPoolSize(poolSize))
	b.Cleanup(s.Close)
	opts := emulator.Options{Signer: s}
	if st == fileStore || st == sealedFileStore {
		opts.StatePath = filepath.Join(b.TempDir(), "key.state")
	}
	if st == sealedFileStore {
		k, err := store.NewStateKey([]byte("bench state key, 32 bytes or so."))
		if err != nil {
			b.Fatal(err)
		}
		opts.StoreOptions = []store.Option{store.WithStateKey(k)}
	}
	k, err := emulator.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = k.Close() })
	if connect == nil {
		connect = (*emulator.Key).Connect
	}
	conn := connect(k)
	b.Cleanup(func() { _ = conn.Close() })
	c := ctaphid.NewClient(conn)
	if _, err := c.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	r := &rig{key: k, sig: s, client: c}
	r.refill(b)
	return r
}

// refill tops the pool up; call it with the timer stopped.
func (r *rig) refill(b *testing.B) {
	if err := r.sig.Fill(); err != nil {
		b.Fatal(err)
	}
	// Stay above the refiller's low-water mark (half the pool), so it never wakes while timed.
	r.avail = poolSize - poolSize/2 - 1
}

// spend accounts for n signatures, refilling outside the timer when the pool gets low.
func (r *rig) spend(b *testing.B, n int) {
	if r.avail < n {
		b.StopTimer()
		r.refill(b)
		b.StartTimer()
	}
	r.avail -= n
}

// checkWarm fails the benchmark if any signature computed its nonce inline.
func (r *rig) checkWarm(b *testing.B) {
	b.Helper()
	if st := r.sig.Stats(); st.Misses != 0 {
		b.Fatalf("warm-pool benchmark took %d pool misses", st.Misses)
	}
}

func cbor(b *testing.B, cmd ctap.Command, v any) []byte {
	b.Helper()
	body, err := ctap.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return append([]byte{byte(cmd)}, body...)
}

func clientDataHash() []byte {
	h := sha256.Sum256([]byte(`{"type":"webauthn.get","challenge":"YmVuY2g","origin":"https://bench.example"}`))
	return h[:]
}

// makeCredentialRequest asks for a non-resident ES256 credential without UV.
func makeCredentialRequest(b *testing.B) []byte {
	alg := int64(cose.AlgES256)
	return cbor(b, ctap.CmdMakeCredential, &ctap.MakeCredentialRequest{
		ClientDataHash:   clientDataHash(),
		RP:               &ctap.RPEntity{ID: rpID, Name: "Bench"},
		User:             &ctap.UserEntity{ID: []byte("bench-user-0001"), Name: "bench", DisplayName: "Bench User"},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
		Options:          &ctap.Options{RK: ctap.Bool(false)},
	})
}

// transact sends one CTAP2 request and fails unless the key answers CTAP2_OK.
func transact(b *testing.B, c *ctaphid.Client, req []byte) []byte {
	resp, err := c.CBOR(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	if len(resp) == 0 || resp[0] != byte(ctap.StatusOK) {
		b.Fatalf("key answered %x", resp[:min(len(resp), 1)])
	}
	return resp[1:]
}

// getAssertionRequest registers a non-resident credential and returns a getAssertion for it
// (allowList of one, user presence, no UV).
func getAssertionRequest(b *testing.B, r *rig) []byte {
	b.Helper()
	var mc ctap.MakeCredentialResponse
	if err := ctap.Unmarshal(transact(b, r.client, makeCredentialRequest(b)), &mc); err != nil {
		b.Fatal(err)
	}
	ad, err := ctap.ParseAuthData(mc.AuthData)
	if err != nil || ad.Attested == nil {
		b.Fatalf("makeCredential authData: %v", err)
	}
	return cbor(b, ctap.CmdGetAssertion, &ctap.GetAssertionRequest{
		RPID:           rpID,
		ClientDataHash: clientDataHash(),
		AllowList:      []ctap.CredentialDescriptor{{ID: ad.Attested.CredentialID, Type: ctap.CredentialTypePublicKey}},
	})
}

// stdlibRuns collects the ns/op (and the process CPU per op) of every stdlib-sign run of one
// top-level benchmark (with -count N a sub-benchmark runs N times in a row), so later
// sub-benchmarks can report a ratio to their median.
type stdlibRuns struct{ wall, cpu []float64 }

func (r *stdlibRuns) median() float64    { return median(r.wall) }
func (r *stdlibRuns) medianCPU() float64 { return median(r.cpu) }

func median(r []float64) float64 {
	if len(r) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(r))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stdlibSign benchmarks one crypto/ecdsa P-256 signature (the targets' unit) and records its
// ns/op, so the later sub-benchmarks of the same run can report themselves as a ratio of it.
func stdlibSign(b *testing.B, out *stdlibRuns) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("benchmark clientDataHash || authenticatorData"))
	start := cpuTime()
	for b.Loop() {
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
	cpu := float64(cpuTime()-start) / float64(b.N)
	b.ReportMetric(cpu, "cpu-ns/op")
	out.wall = append(out.wall, float64(b.Elapsed().Nanoseconds())/float64(b.N))
	out.cpu = append(out.cpu, cpu)
}

// reportRatio adds the "stdlib-signs" metric: this benchmark's time per op in units of one
// stdlib signature (the median of the stdlib-sign runs earlier in the same run; absent when
// that sub-benchmark was filtered out).
func reportRatio(b *testing.B, std *stdlibRuns) {
	if stdlibNs := std.median(); stdlibNs > 0 && b.N > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/stdlibNs, "stdlib-signs/op")
	}
}

// residentGetAssertionRequest registers a discoverable credential and returns a getAssertion that
// finds it by RP ID alone (no allowList): the key reads the credential from its store.
func residentGetAssertionRequest(b *testing.B, r *rig) []byte {
	b.Helper()
	alg := int64(cose.AlgES256)
	transact(b, r.client, cbor(b, ctap.CmdMakeCredential, &ctap.MakeCredentialRequest{
		ClientDataHash:   clientDataHash(),
		RP:               &ctap.RPEntity{ID: rpID, Name: "Bench"},
		User:             &ctap.UserEntity{ID: []byte("bench-user-0002"), Name: "resident", DisplayName: "Resident User"},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
		Options:          &ctap.Options{RK: ctap.Bool(true)},
	}))
	return cbor(b, ctap.CmdGetAssertion, &ctap.GetAssertionRequest{RPID: rpID, ClientDataHash: clientDataHash()})
}

// residentLoop times getAssertion of a discoverable credential with a warm pool.
func residentLoop(b *testing.B, r *rig, std *stdlibRuns) {
	req := residentGetAssertionRequest(b, r)
	r.refill(b)
	requestLoop(b, r, req, std)
}

// getAssertionLoop times whole getAssertion requests with a warm pool.
func getAssertionLoop(b *testing.B, r *rig, std *stdlibRuns) {
	req := getAssertionRequest(b, r)
	r.refill(b)
	requestLoop(b, r, req, std)
}

// requestLoop sends req flat out, one signature's nonce spent (and topped up untimed) per request,
// then checks that no signature missed the pool and reports the ratio to a stdlib signature.
func requestLoop(b *testing.B, r *rig, req []byte, std *stdlibRuns) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.spend(b, 1)
		transact(b, r.client, req)
	}
	b.StopTimer()
	r.checkWarm(b)
	reportRatio(b, std)
}

// BenchmarkGetAssertion is a whole getAssertion (non-resident credential in the allowList, UP,
// no UV) from the host's CTAPHID client to the response: framing, CBOR, credential unwrap,
// counter, signature. The store is the bbolt state file unless the name says memory; "sealed" is
// that file sealed with a state key.
func BenchmarkGetAssertion(b *testing.B) {
	var std stdlibRuns
	b.Run("stdlib-sign", func(b *testing.B) { stdlibSign(b, &std) })
	b.Run("inprocess", func(b *testing.B) {
		getAssertionLoop(b, newRig(b, fileStore, nil), &std)
	})
	b.Run("inprocess-memory", func(b *testing.B) {
		getAssertionLoop(b, newRig(b, memStore, nil), &std)
	})
	b.Run("sustained", func(b *testing.B) { sustainedLoop(b, &std) })
	// The same as inprocess with a trace recorder on the host connection (fidolab run --trace):
	// its cost is the difference between the two, and trace-bytes/op is the trace's growth.
	b.Run("inprocess-traced", func(b *testing.B) {
		var size countingWriter
		rec, err := trace.NewRecorder(&size, trace.Options{Tool: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		r := newRig(b, fileStore, func(k *emulator.Key) ctaphid.ReportConn {
			return rec.Conn(k.Connect(), trace.Source{Transport: "inproc"})
		})
		req := getAssertionRequest(b, r)
		r.refill(b)
		before := size.n
		requestLoop(b, r, req, &std)
		b.ReportMetric(float64(size.n-before)/float64(b.N), "trace-bytes/op")
		if err := rec.Close(); err != nil {
			b.Fatal(err)
		}
	})
	// The cost of sealing the state: each sealed sub-benchmark next to the same request unsealed.
	// A non-resident credential's ID is opened with the master secret the key holds in memory; a
	// discoverable one is read (and, sealed, opened) from the store on every request.
	b.Run("inprocess-sealed", func(b *testing.B) {
		getAssertionLoop(b, newRig(b, sealedFileStore, nil), &std)
	})
	b.Run("inprocess-resident", func(b *testing.B) {
		residentLoop(b, newRig(b, fileStore, nil), &std)
	})
	b.Run("inprocess-resident-sealed", func(b *testing.B) {
		residentLoop(b, newRig(b, sealedFileStore, nil), &std)
	})
	b.Run("socket", func(b *testing.B) {
		getAssertionLoop(b, newRig(b, fileStore, socketConn(b)), &std)
	})
	// The floors (floor_test.go): the authenticator alone, and the bare socket round trip.
	b.Run("handlecbor", func(b *testing.B) {
		handleCBORLoop(b, newRig(b, fileStore, nil), &std)
	})
	b.Run("socket-floor", func(b *testing.B) {
		socketFloorLoop(b, newRig(b, fileStore, nil))
		reportRatio(b, &std)
	})
	b.Run("usbredir", func(b *testing.B) {
		getAssertionLoop(b, newRig(b, fileStore, usbredirConn(b)), &std)
	})
	b.Run("usbip", func(b *testing.B) {
		getAssertionLoop(b, newRig(b, fileStore, usbipConn(b)), &std)
	})
}

// BenchmarkMakeCredential is a whole makeCredential of a non-resident ES256 credential without
// UV: key generation, credential-ID sealing, counter, packed batch attestation signature.
func BenchmarkMakeCredential(b *testing.B) {
	var std stdlibRuns
	b.Run("stdlib-sign", func(b *testing.B) { stdlibSign(b, &std) })
	b.Run("inprocess", func(b *testing.B) {
		requestLoop(b, newRig(b, fileStore, nil), makeCredentialRequest(b), &std)
	})
}

// countingWriter counts what a trace recorder writes.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// socketConn serves the key on a Unix socket in b's temp dir and dials it.
func socketConn(b *testing.B) func(*emulator.Key) ctaphid.ReportConn {
	return func(k *emulator.Key) ctaphid.ReportConn {
		addr := "unix:" + filepath.Join(b.TempDir(), "key.sock")
		l, err := socket.Listen(addr)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- socket.Serve(ctx, l, k.Device) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		})
		conn, err := socket.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		return conn
	}
}
