package winevent

import (
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/trace"
)

// describe makes the source of one operation: the process that asked, the key that answered.
// The events name the process only by ID; its name comes from Options.Processes, from a field
// that names it, or is inferred from what it asked, and then says so.
func describe(t *txn, known map[int]string) trace.Source {
	s := trace.Source{Side: trace.SideEventLog, Transport: "windows-eventlog", Case: "transaction " + t.id}
	var pids []int
	seen := map[int]bool{}
	named := ""
	for _, e := range t.events {
		if e.PID != 0 && !seen[e.PID] {
			seen[e.PID] = true
			pids = append(pids, e.PID)
		}
		for _, f := range e.Fields {
			n := strings.ToLower(f.Name)
			if f.Value != "" && (strings.Contains(n, "process") || strings.Contains(n, "caller") || n == "applicationname") {
				named = f.Value
			}
		}
		if e.ID == 2104 || e.ID == 2211 || e.ID == 2210 {
			if v, ok := e.Get("DevicePath"); ok && s.Endpoint == "" {
				s.Endpoint = v
			}
			var dev []string
			for _, n := range []string{"Manufacturer", "Product", "AAGuid"} {
				if v, ok := e.Get(n); ok && v != "" {
					dev = append(dev, v)
				}
			}
			if len(dev) > 0 {
				s.Device = strings.Join(dev, " ")
			}
		}
	}
	var peers []string
	for _, p := range pids {
		peers = append(peers, fmt.Sprintf("pid %d", p))
	}
	s.Peer = strings.Join(peers, ", ")
	pid := 0
	if len(pids) > 0 {
		pid = pids[0]
	}
	s.Process = process(pid, known, named)
	if s.Process == "" {
		s.Process = infer(t)
	}
	return s
}

// process names a PID from what the engineer told or what an event said.
func process(pid int, known map[int]string, named string) string {
	if n, ok := known[pid]; ok && pid != 0 {
		return n
	}
	return named
}

// infer guesses the asking process from the operation's CTAP traffic, and says it is a guess.
func infer(t *txn) string {
	var rpID string
	mgmt, signIn, register := false, false, false
	for _, e := range t.events {
		if v, ok := e.Get("RpId"); ok && v != "" {
			rpID = v
		}
		switch e.ID {
		case 1000, 1101:
			register = true
		case 1003, 1103:
			signIn = true
		}
		for _, name := range []string{"Request"} {
			if b, ok := binaryField(e, name); ok && len(b) > 0 {
				switch ctap.Command(b[0]) {
				case ctap.CmdBioEnrollment, ctap.CmdBioEnrollmentPre, ctap.CmdCredentialManagement,
					ctap.CmdCredentialManagementPre, ctap.CmdReset:
					mgmt = mgmt || e.ID == 2225 || e.ID == 2100
				}
			}
		}
	}
	switch {
	case mgmt:
		return "bioenrollmenthost.exe? (inferred: Settings › Security Key management commands)"
	case signIn && rpID == "login.microsoft.com" && !register:
		return "LogonUI.exe or a browser? (inferred: sign-in to login.microsoft.com; give --process PID=NAME)"
	case rpID != "":
		return fmt.Sprintf("a browser or app? (inferred: relying party %s; give --process PID=NAME)", rpID)
	}
	return "unknown process (give --process PID=NAME)"
}
