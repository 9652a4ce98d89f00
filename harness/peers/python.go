package peers

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
)

// PythonInterpreter is the interpreter that has Debian's python3-fido2: a python3 earlier in PATH
// (pyenv and the like) usually lacks it.
const PythonInterpreter = "/usr/bin/python3"

// pythonTimeout bounds one run of the script; a full run takes about 2 s.
const pythonTimeout = 3 * time.Minute

// The script is embedded so the peer runs from any working directory and from an installed binary.
//
//go:embed testdata/pyfido2_peer.py testdata/pyfido2_ctap2.py testdata/pyfido2_mgmt.py
var pythonScripts embed.FS

// CheckPythonFido2 reports, wrapping ErrMissing, when the interpreter or python3-fido2 is absent.
func CheckPythonFido2(ctx context.Context) error {
	if _, err := os.Stat(PythonInterpreter); err != nil {
		return fmt.Errorf("%w: %s: %v (apt-get install python3-fido2)", ErrMissing, PythonInterpreter, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, PythonInterpreter, "-c", "import fido2; print(fido2.__version__)").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: python3-fido2 not importable by %s: %s (apt-get install python3-fido2)",
			ErrMissing, PythonInterpreter, firstLine(string(out)))
	}
	return nil
}

// RunPythonFido2 runs python-fido2 against the key at the Unix socket sockPath, whose control API
// (touch, power) is at controlURL, and returns one row per operation. The key must be fresh: the
// script sets a PIN, fills the credential store and ends with a reset.
func RunPythonFido2(ctx context.Context, sockPath, controlURL, personaName string) ([]Row, error) {
	dir, err := os.MkdirTemp("", "fidolab-pyfido2-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := writeScripts(dir); err != nil {
		return nil, err
	}
	// No bytecode next to the script, no packages installed for the developer.
	env := append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONNOUSERSITE=1")
	return runPeer(ctx, "python-fido2 peer", pythonTimeout, env, PythonInterpreter,
		filepath.Join(dir, "pyfido2_peer.py"), sockPath, controlURL, personaName)
}

func writeScripts(dir string) error {
	entries, err := pythonScripts.ReadDir("testdata")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := pythonScripts.ReadFile("testdata/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ServeControl serves k's control API on an ephemeral loopback port and returns its base URL
// and a function that stops it.
func ServeControl(k *emulator.Key) (string, func() error, error) {
	l, err := control.Listen("127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: control.Handler(k), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	stop := func() error {
		err := srv.Close()
		if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		return err
	}
	return "http://" + l.Addr().(*net.TCPAddr).String(), stop, nil
}

// PythonFido2Peer returns python-fido2 as a Peer, or an error wrapping ErrMissing.
func PythonFido2Peer(ctx context.Context) (Peer, error) {
	if err := CheckPythonFido2(ctx); err != nil {
		return Peer{}, err
	}
	return Peer{Name: "python-fido2", Run: func(ctx context.Context, lk *LocalKey, name string, _ *persona.Persona) (rows []Row, err error) {
		url, stop, err := ServeControl(lk.Key)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, stop()) }()
		return RunPythonFido2(ctx, lk.Socket, url, name)
	}}, nil
}
