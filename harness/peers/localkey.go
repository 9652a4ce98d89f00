package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/transport/socket"
)

// LocalKey is a fresh in-memory key served on a Unix socket in this process, for a peer to drive.
type LocalKey struct {
	Key    *emulator.Key
	Socket string // path of the Unix socket

	dir    string
	cancel context.CancelFunc
	done   chan error
}

// ServeLocal opens a fresh in-memory key with persona p (nil: default) and serves it on a Unix
// socket in a new temporary directory (short, so the path fits sun_path). Close releases both.
func ServeLocal(p *persona.Persona) (*LocalKey, error) {
	k, err := emulator.Open(emulator.Options{Persona: p})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fidolab-peer-")
	if err != nil {
		_ = k.Close()
		return nil, err
	}
	path := filepath.Join(dir, "key.sock")
	l, err := socket.Listen("unix:" + path)
	if err != nil {
		_ = k.Close()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lk := &LocalKey{Key: k, Socket: path, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { lk.done <- socket.Serve(ctx, l, k.Device) }()
	return lk, nil
}

// Replug unplugs and replugs the key: a power-up, which opens the reset window.
func (lk *LocalKey) Replug() error {
	if err := lk.Key.SetPlugged(false); err != nil {
		return fmt.Errorf("unplug: %w", err)
	}
	return lk.Key.SetPlugged(true)
}

// Close stops serving, closes the key and removes the socket's directory.
func (lk *LocalKey) Close() error {
	lk.cancel()
	serveErr := <-lk.done
	return errors.Join(serveErr, lk.Key.Close(), os.RemoveAll(lk.dir))
}
