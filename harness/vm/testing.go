package vm

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// prepareTimeout bounds a cold Prepare in a test (a kernel download and unpack take ~15 s here).
const prepareTimeout = 5 * time.Minute

// Require returns the image for a test that boots guests. When this machine cannot run one
// (ErrUnavailable: QEMU, busybox-static, fido2-tools, usbip or the kernel package missing) the
// test is skipped with the reason — or fails under CI=true, where .ci/deps installs all of it. Any
// other error fails the test.
func Require(t testing.TB) *Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	img, err := Prepare(ctx, Options{})
	switch {
	case err == nil:
		if img.Built {
			t.Logf("vm: built guest image in %v (kernel %s)", img.BuildTime.Round(time.Millisecond), img.Package)
		}
		return img
	case errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true":
		t.Skipf("no test guest here (CI is not true, so this skips): %v", err)
	default:
		t.Fatalf("test guest: %v", err)
	}
	return nil
}

// RunT boots a guest for a test: Require, then img.Run with the guest's console printed in the test log
// if the test fails. It fails the test when the guest reports no status (see Run)
// and returns the result otherwise; checking ExitCode is the caller's.
func RunT(t testing.TB, ctx context.Context, cfg Config) Result {
	t.Helper()
	img := Require(t)
	res, err := img.Run(ctx, cfg)
	t.Logf("vm: boot %v, total %v (waited %v for a slot), exit %d",
		res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond), res.Wait.Round(time.Millisecond), res.ExitCode)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guest console:\n%s", res.Log)
		}
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return res
}
