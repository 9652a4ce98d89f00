package main

import (
	"flag"
	"os"

	"github.com/fidolab/fidolab/authenticator/store"
)

// stateKeyEnv names the state key file when --state-key-file is not given.
const stateKeyEnv = "FIDOLAB_STATE_KEY_FILE"

// stateKeyFlag registers --state-key-file.
func stateKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("state-key-file", "", "seal the state file with the key in FILE: at least 32 random bytes, mode 0600 (env "+stateKeyEnv+")")
}

// loadStateKey reads the state key named by --state-key-file (or the environment) once, for the
// store to derive the file's sealing key from when it opens; nil when none is named. The flag
// without a state file is a usage error; the environment variable is ignored for a key kept in
// memory.
func loadStateKey(flagValue, statePath string) (*store.StateKey, error) {
	path := flagValue
	if path == "" {
		if path = os.Getenv(stateKeyEnv); path == "" || statePath == "" {
			return nil, nil
		}
	}
	if statePath == "" {
		return nil, usagef("--state-key-file seals a state file: give --state FILE too")
	}
	return store.LoadStateKey(path)
}

// stateKeyOptions is loadStateKey as store options.
func stateKeyOptions(flagValue, statePath string) ([]store.Option, error) {
	k, err := loadStateKey(flagValue, statePath)
	if k == nil || err != nil {
		return nil, err
	}
	return []store.Option{store.WithStateKey(k)}, nil
}
