package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// termAsker is the person at the terminal `fidolab run` was started from: asked before a key that
// is not empty is erased, told to replug or touch a real key.
type termAsker struct {
	out   io.Writer
	lines chan string // lines typed on stdin, read by one goroutine for the life of the process
	once  sync.Once
	in    io.Reader
	mu    sync.Mutex
}

// newTermAsker returns an asker when stdin and the output are terminals, nil otherwise (CI, a
// pipe, /dev/null): then nobody is asked and a key that is not empty is refused.
func newTermAsker(stdin *os.File, out io.Writer) *termAsker {
	if !isTerminal(stdin) {
		return nil
	}
	if f, ok := out.(*os.File); !ok || !isTerminal(f) {
		return nil
	}
	return &termAsker{out: out, in: stdin}
}

// isTerminal is a tty check, not a character-device one: /dev/null is a character device too.
func isTerminal(f *os.File) bool { return f != nil && term.IsTerminal(int(f.Fd())) }

func (a *termAsker) start() {
	a.once.Do(func() {
		a.lines = make(chan string)
		go func() {
			sc := bufio.NewScanner(a.in)
			for sc.Scan() {
				a.lines <- sc.Text()
			}
			close(a.lines)
		}()
	})
}

// Confirm prints msg and asks; only "y" or "yes" is a yes.
func (a *termAsker) Confirm(ctx context.Context, msg string) (bool, error) {
	a.start()
	a.mu.Lock()
	fmt.Fprintf(a.out, "\n%s [y/N] ", msg)
	a.mu.Unlock()
	select {
	case line, ok := <-a.lines:
		if !ok {
			return false, nil
		}
		ans := strings.ToLower(strings.TrimSpace(line))
		return ans == "y" || ans == "yes", nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Tell prints an instruction on its own line.
func (a *termAsker) Tell(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintf(a.out, "\n>> %s\n", msg)
}
