//go:build !linux

package socket

import "net"

// describePeer says who is on the other end of a connection, for traces (Port.Describe).
func describePeer(c net.Conn) string { return c.RemoteAddr().String() }
