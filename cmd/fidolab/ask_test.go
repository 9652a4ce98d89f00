package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTermAsker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typed string
		yes   bool
	}{{"y\n", true}, {"YES\n", true}, {"\n", false}, {"no\n", false}, {"sure\n", false}, {"", false}}
	for _, tt := range tests {
		var out bytes.Buffer
		a := &termAsker{out: &out, in: strings.NewReader(tt.typed)}
		got, err := a.Confirm(context.Background(), "Erase it?")
		require.NoError(t, err)
		require.Equal(t, tt.yes, got, "%q", tt.typed)
		require.Contains(t, out.String(), "Erase it? [y/N]")
	}
	// Nobody types: the context ends the question, as no.
	r, w := io.Pipe()
	t.Cleanup(func() { _ = w.Close() })
	a := &termAsker{out: io.Discard, in: r}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got, err := a.Confirm(ctx, "Erase it?")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, got)

	var out bytes.Buffer
	(&termAsker{out: &out}).Tell("Touch the key.")
	require.Equal(t, "\n>> Touch the key.\n", out.String())
}

func TestNoAskerWithoutATerminal(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.Nil(t, newTermAsker(r, w), "a pipe is nobody to ask: the key is refused instead")
	require.Nil(t, newTermAsker(nil, &bytes.Buffer{}))
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	require.Nil(t, newTermAsker(null, null), "/dev/null is a character device, not a terminal")
}
