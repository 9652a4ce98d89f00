package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
)

// The floors under GetAssertion's targets: what the authenticator alone costs (handlecbor), and
// what carrying a getAssertion's reports over a Unix socket and back costs with nothing else
// (socket-floor). inprocess − handlecbor is the in-process CTAPHID framing; socket − inprocess
// is the socket transport, of which socket-floor is the part no framing code can remove.

// handleCBORLoop calls the authenticator's CBOR entry point directly with a warm pool: no
// CTAPHID, no host client.
func handleCBORLoop(b *testing.B, r *rig, std *stdlibRuns) {
	req := getAssertionRequest(b, r)
	r.refill(b)
	status := func(byte) {}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.spend(b, 1)
		resp := r.key.Auth.HandleCBOR(context.Background(), req, status)
		if len(resp) == 0 || resp[0] != 0 {
			b.Fatalf("key answered %x", resp[:min(len(resp), 1)])
		}
	}
	b.StopTimer()
	r.checkWarm(b)
	reportRatio(b, std)
}

// reportBytes is the size of the 64-byte HID reports that carry a message of n bytes (an
// initialisation packet holds 57, each continuation 59).
func reportBytes(n int) int {
	reports := 1
	if n > 57 {
		reports += (n - 57 + 58) / 59
	}
	return 64 * reports
}

// socketFloorLoop sends as many bytes as a getAssertion's request reports over a Unix socket,
// in one write, to a goroutine that reads them and answers with as many bytes as the response's
// reports, in one write, the way the socket transport does: the round trip's system calls and
// goroutine wake-ups, no CTAPHID and no authenticator.
func socketFloorLoop(b *testing.B, r *rig) {
	req := getAssertionRequest(b, r)
	r.refill(b)
	resp := transact(b, r.client, req)
	in, out := make([]byte, reportBytes(len(req))), make([]byte, reportBytes(len(resp)+1))

	l, err := net.Listen("unix", filepath.Join(b.TempDir(), "floor.sock"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		buf := make([]byte, len(in))
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				served <- err
				return
			}
			if _, err := c.Write(out); err != nil {
				served <- err
				return
			}
		}
	}()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	got := make([]byte, len(out))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(in); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = c.Close()
	if err := <-served; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(in)+len(out)), "bytes/op")
}
