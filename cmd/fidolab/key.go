package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
)

// keySubcommands are the key subcommands and what each does, for key -h.
const keySubcommands = `
subcommands:
  info    what the key is and holds: persona, PIN, credentials, sealing
  list    its resident credentials (--json: with whole IDs)
  delete  delete one credential: --id HEX, or --rp RP --user NAME
  reset   wipe every credential, the PIN and all settings (--yes)
  seal    seal a plain state file's secrets with the key of --state-key-file

Run "fidolab key SUBCOMMAND -h" for its flags.
`

func cmdKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage:\n"+commandUsage("fidolab key")+keySubcommands)
		return usagef("key needs a subcommand: info, list, delete, reset, seal")
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprint(stderr, "usage:\n"+commandUsage("fidolab key")+keySubcommands)
		return flag.ErrHelp
	}
	fs := newFlags("fidolab key "+sub, stderr)
	state := fs.String("state", "", "the key's state file (required); for info and list, a directory of serve --keys state files")
	stateKey := stateKeyFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	var id, rp, userName *string
	var yes *bool
	switch sub {
	case "info", "list":
	case "delete":
		id = fs.String("id", "", "credential ID (hex) to delete")
		rp = fs.String("rp", "", "with --user: delete this RP's credential for that user name")
		userName = fs.String("user", "", "user name (with --rp)")
	case "reset":
		yes = fs.Bool("yes", false, "confirm: wipe every credential, the PIN and all settings")
	case "seal":
	default:
		return usagef("unknown key subcommand %q (want info, list, delete, reset, seal)", sub)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *state == "" {
		return usagef("--state FILE is required")
	}
	if isStateDir(*state) {
		return keyDir(stdout, sub, *state, *stateKey, *asJSON)
	}
	if err := emulator.CheckStateFile(*state); err != nil {
		return err
	}
	key, err := loadStateKey(*stateKey, *state)
	if err != nil {
		return err
	}
	if sub == "seal" {
		return sealState(stdout, *state, key, *asJSON)
	}
	var opts []store.Option
	if key != nil {
		opts = append(opts, store.WithStateKey(key))
	}
	st, err := store.OpenFile(*state, opts...)
	if err != nil {
		return fmt.Errorf("%s: %w", *state, err)
	}
	defer st.Close()
	p, err := emulator.StoredPersona(st)
	if err != nil {
		return err
	}
	if p == nil {
		if p, err = persona.Builtin("default"); err != nil {
			return err
		}
	}
	status, err := emulator.Describe(st, p)
	if err != nil {
		return err
	}
	status.StatePath = *state
	switch sub {
	case "info":
		if *asJSON {
			return printJSON(stdout, struct {
				emulator.Status
				Sealed bool `json:"sealed"`
			}{status, store.Sealed(st)})
		}
		if err := status.WriteText(stdout); err != nil {
			return err
		}
		sealed := "no (secrets in clear, protected by mode 0600 only; see fidolab key seal)"
		if store.Sealed(st) {
			sealed = "yes (AES-256-GCM, key from --state-key-file)"
		}
		_, err := fmt.Fprintf(stdout, "sealed:                    %s\n", sealed)
		return err
	case "list":
		if *asJSON {
			return printJSON(stdout, status.Credentials)
		}
		return status.WriteCredentials(stdout)
	case "delete":
		victim, err := pickCredential(status, *id, *rp, *userName)
		if err != nil {
			return err
		}
		raw, _ := hex.DecodeString(victim.ID)
		if err := st.DeleteResident(raw); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, map[string]any{"deleted": victim})
		}
		_, err = fmt.Fprintf(stdout, "deleted %s's credential for %s\n", victim.UserName, victim.RPID)
		return err
	default: // reset
		if !*yes {
			return usagef("reset wipes every credential, the PIN and all settings: add --yes to confirm")
		}
		// An offline reset is an administrator's act on the file, not authenticatorReset: it is
		// not bound to the 10 s power-up window, which only a running key can enforce.
		if err := st.Reset(); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, map[string]bool{"reset": true})
		}
		_, err = fmt.Fprintf(stdout, "reset %s: %d credentials removed, PIN cleared\n", *state, status.Resident.Count)
		return err
	}
}

// sealState seals a plain state file in place with the key given by --state-key-file.
func sealState(stdout io.Writer, path string, key *store.StateKey, asJSON bool) error {
	if key == nil {
		return usagef("seal needs the key: --state-key-file FILE (or %s)", stateKeyEnv)
	}
	if err := store.SealFile(path, key); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if asJSON {
		return printJSON(stdout, map[string]bool{"sealed": true})
	}
	_, err := fmt.Fprintf(stdout, "sealed %s: open it from now on with --state-key-file\n", path)
	return err
}

func pickCredential(s emulator.Status, id, rp, userName string) (emulator.CredentialInfo, error) {
	var hits []emulator.CredentialInfo
	switch {
	case id != "" && (rp != "" || userName != ""):
		return emulator.CredentialInfo{}, usagef("give either --id or --rp with --user")
	case id != "":
		if _, err := hex.DecodeString(id); err != nil {
			return emulator.CredentialInfo{}, usagef("--id %q is not hex: give the whole credential ID (fidolab key list --json shows it)", id)
		}
		id = strings.ToLower(id)
		for _, c := range s.Credentials {
			if c.ID == id {
				hits = append(hits, c)
			}
		}
	case rp != "" && userName != "":
		for _, c := range s.Credentials {
			if c.RPID == rp && c.UserName == userName {
				hits = append(hits, c)
			}
		}
	default:
		return emulator.CredentialInfo{}, usagef("delete needs --id HEX, or --rp RP and --user NAME")
	}
	switch len(hits) {
	case 0:
		if id != "" {
			return emulator.CredentialInfo{}, fmt.Errorf("no credential with ID %s (fidolab key list --json shows the IDs)", id)
		}
		return emulator.CredentialInfo{}, fmt.Errorf("no credential of user %q for %s (fidolab key list shows them)", userName, rp)
	case 1:
		return hits[0], nil
	}
	return emulator.CredentialInfo{}, fmt.Errorf("%d credentials match; use --id", len(hits))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
