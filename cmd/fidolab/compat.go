package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/peers"
)

// cmdCompat runs the real clients against every built-in persona and writes the compatibility
// table. A peer that is not installed is left out with a warning, unless --require is given.
func cmdCompat(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab compat", stderr)
	out := fs.String("out", "", "write the Markdown report to FILE (default: stdout)")
	require := fs.Bool("require", os.Getenv("CI") == "true", "fail when a peer is not installed (default under CI=true)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("compat takes no arguments")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	work, err := os.MkdirTemp("", "fidolab-compat-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	var list []peers.Peer
	addPeer := func(name string, p peers.Peer, err error) error {
		switch {
		case err == nil:
			list = append(list, p)
		case errors.Is(err, peers.ErrMissing) && !*require:
			fmt.Fprintf(stderr, "fidolab compat: skipping %s: %v\n", name, err)
		default:
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	lf, err := peers.Libfido2Peer(filepath.Join(work, "libfido2"))
	if err := addPeer("libfido2", lf, err); err != nil {
		return err
	}
	py, err := peers.PythonFido2Peer(ctx)
	if err := addPeer("python-fido2", py, err); err != nil {
		return err
	}
	if len(list) == 0 {
		return errors.New("no peer could run")
	}
	fmt.Fprintf(stderr, "fidolab compat: %d client(s) × %d persona(s)\n", len(list), len(persona.Names()))
	rows, runErr := peers.RunCompatibility(ctx, list, persona.Names())
	var doc bytes.Buffer
	if err := peers.WriteCompatibility(&doc, rows); err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(doc.Bytes())
	} else {
		err = os.WriteFile(*out, doc.Bytes(), 0o644)
	}
	if err != nil {
		return err
	}
	if failed := peers.Failed(rows); len(failed) > 0 || runErr != nil {
		for _, r := range failed {
			fmt.Fprintf(stderr, "fidolab compat: FAIL %s\n", r)
		}
		return errors.Join(fmt.Errorf("%d operation(s) failed", len(failed)), runErr)
	}
	return nil
}
