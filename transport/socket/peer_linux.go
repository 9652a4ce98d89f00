package socket

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
)

// describePeer says who is on the other end of a connection, for traces (Port.Describe): for a
// Unix socket the peer's process (SO_PEERCRED) and its command name, else its address.
func describePeer(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c.RemoteAddr().String()
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return ""
	}
	s := fmt.Sprintf("pid %d uid %d", cred.Pid, cred.Uid)
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cred.Pid)); err == nil {
		s += " (" + strings.TrimSpace(string(comm)) + ")"
	}
	return s
}
