package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/fleet"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
)

// isStateDir reports whether --state names a directory: the keys of serve --keys N.
func isStateDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// dirKey is one key of a state directory, for key info and key list --json.
type dirKey struct {
	Key string `json:"key"`
	emulator.Status
	Sealed bool `json:"sealed"`
}

// dirKeyCredentials is one key's discoverable credentials, for key list --json.
type dirKeyCredentials struct {
	Key         string                    `json:"key"`
	StatePath   string                    `json:"statePath"`
	Credentials []emulator.CredentialInfo `json:"credentials"`
}

// keyDir is fidolab key info|list --state DIR: every key's state file (DIR/usbN.state) in turn.
func keyDir(stdout io.Writer, sub, dir, stateKeyFlag string, asJSON bool) error {
	if sub != "info" && sub != "list" {
		return usagef("--state %s is a directory: key %s works on one state file at a time (%s)", dir, sub,
			filepath.Join(dir, "usbN.state"))
	}
	files, err := fleet.StateFiles(dir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s: no key state files (usbN.state, as fidolab serve --keys makes them)", dir)
	}
	keys := make([]dirKey, 0, len(files))
	for _, path := range files {
		k, err := describeStateFile(path, stateKeyFlag)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	if asJSON {
		if sub == "info" {
			return printJSON(stdout, keys)
		}
		out := make([]dirKeyCredentials, len(keys))
		for i, k := range keys {
			out[i] = dirKeyCredentials{Key: k.Key, StatePath: k.StatePath, Credentials: k.Credentials}
			if out[i].Credentials == nil {
				out[i].Credentials = []emulator.CredentialInfo{}
			}
		}
		return printJSON(stdout, out)
	}
	for i, k := range keys {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if sub == "info" {
			fmt.Fprintf(stdout, "%s:\n", k.Key)
			if err := k.WriteText(stdout); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s (%s, %s):\n", k.Key, k.StatePath, k.Persona)
		if err := k.WriteCredentials(stdout); err != nil {
			return err
		}
	}
	return nil
}

// describeStateFile reads one key's state as key info shows it.
func describeStateFile(path, stateKeyFlag string) (dirKey, error) {
	name := strings.TrimSuffix(filepath.Base(path), ".state")
	if err := emulator.CheckStateFile(path); err != nil {
		return dirKey{}, err
	}
	key, err := loadStateKey(stateKeyFlag, path)
	if err != nil {
		return dirKey{}, err
	}
	var opts []store.Option
	if key != nil {
		opts = append(opts, store.WithStateKey(key))
	}
	st, err := store.OpenFile(path, opts...)
	if err != nil {
		return dirKey{}, fmt.Errorf("%s: %w", path, err)
	}
	defer st.Close()
	p, err := emulator.StoredPersona(st)
	if err != nil {
		return dirKey{}, fmt.Errorf("%s: %w", path, err)
	}
	if p == nil {
		if p, err = persona.Builtin("default"); err != nil {
			return dirKey{}, err
		}
	}
	status, err := emulator.Describe(st, p)
	if err != nil {
		return dirKey{}, fmt.Errorf("%s: %w", path, err)
	}
	status.StatePath = path
	return dirKey{Key: name, Status: status, Sealed: store.Sealed(st)}, nil
}
