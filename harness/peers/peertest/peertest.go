// Package peertest holds the helpers that tests driving a real peer (libfido2, python-fido2,
// chromium) share. It imports testing, so only _test.go files import it: the fidolab binary,
// which links harness/peers, must not link the testing package.
package peertest

import (
	"os"
	"testing"
)

// Require stops the test when a peer (compiler, library, interpreter) is missing: it fails
// under CI=true, where the peer must be installed, and skips elsewhere. what names the peer
// and how to install it. A nil err does nothing.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("peer %s missing (CI=true, so this fails): %v", what, err)
		return
	}
	t.Skipf("peer %s missing: %v", what, err)
}
