// Package bench holds the end-to-end benchmarks of the emulated key: whole CTAP2 requests through
// CTAPHID, in-process and over a Unix socket, measured beside a plain crypto/ecdsa signature in
// the same run so that the ratio the performance targets are stated in is visible directly.
// Run them with `go tool -modfile=tools/go.mod task bench` (which writes docs/performance.md) or
// `go test -run '^$' -bench . -benchmem ./authenticator/bench`.
package bench
