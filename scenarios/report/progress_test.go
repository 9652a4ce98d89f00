package report

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/scenarios/result"
)

func TestProgressPlainLines(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := NewProgress(&b, 3)
	require.False(t, p.TTY, "a buffer is not a terminal")
	r := fixtureRun()
	p.Start(r.Cases[0])
	p.Update(1, 3, r.Cases[0])
	p.Update(2, 3, r.Cases[5]) // multi-account 10-2004: fail
	p.Done(r.Cases[7])         // offline 10-1909: key-incompatible
	p.Finish()
	require.Equal(t, "[1/3] pass             lock-screen-sign-in 10-1809\n"+
		"[2/3] fail             multi-account-lock-screen 10-2004\n"+
		"[3/3] key-incompatible offline-sign-in-after-online 10-1909\n", b.String(),
		"one plain line per finished case, no \\r or escapes")
}

func TestProgressTerminalLine(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := NewProgress(&b, 12)
	p.TTY = true
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return base }
	r := fixtureRun()
	p.Start(r.Cases[0])
	p.Update(1, 12, r.Cases[0])
	p.Start(r.Cases[5])
	p.Start(r.Cases[6])
	p.Update(2, 12, r.Cases[5])
	p.now = func() time.Time { return base.Add(1500 * time.Millisecond) }
	p.Finish()
	out := b.String()
	frames := strings.Split(out, "\r")
	require.Equal(t, "", frames[0])
	require.Equal(t, "[ 0/12]   0%  ✓ 0  ✗ 0  lock-screen-sign-in 10-1809\x1b[K", frames[1])
	require.Equal(t, "[ 1/12]   8%  ✓ 1  ✗ 0  lock-screen-sign-in 10-1809\x1b[K", frames[2])
	require.Contains(t, out, "\r\x1b[K✗ multi-account-lock-screen 10-2004: fail\n", "a failure stays on screen above the line")
	require.Contains(t, out, "[ 2/12]  16%  ✓ 1  ✗ 1  multi-account-lock-screen 10-2004\x1b[K")
	require.True(t, strings.HasSuffix(out, "\r[ 2/12]  16%  ✓ 1  ✗ 1  done in 1.5s\x1b[K\n"), "%q", out)
}

func TestProgressTruncatesToWidth(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := NewProgress(&b, 5)
	p.TTY, p.ASCII, p.Width = true, true, 40
	c := &result.Case{ID: strings.Repeat("x", 80), Version: "11-24H2", Verdict: result.Error}
	p.Update(1, 5, c)
	for _, frame := range strings.Split(b.String(), "\r") {
		line := strings.TrimSuffix(strings.TrimSuffix(frame, "\n"), "\x1b[K")
		require.LessOrEqual(t, len(line), 40, "%q", frame)
		require.NotContains(t, line, "✓")
	}
	require.Contains(t, b.String(), "ERR 1")
}

func TestProgressConcurrent(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := NewProgress(&b, 200)
	r := fixtureRun()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := r.Cases[i%len(r.Cases)]
			p.Start(c)
			p.Done(c)
		}()
	}
	wg.Wait()
	p.Finish()
	require.Equal(t, 200, strings.Count(b.String(), "\n"))
	require.Contains(t, b.String(), "[200/200]")
	require.Equal(t, 200, p.pass+p.fail+p.keyinc+p.errored)
}
