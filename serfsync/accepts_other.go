//go:build !linux

package serfsync

import (
	"net"
	"net/netip"
	"time"
)

// portAccepts connects to addr and reports whether it accepted within
// timeout (Linux asks the kernel; here a dial's deadline decides).
func portAccepts(addr netip.AddrPort, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr.String(), timeout)
	if err != nil {
		return err
	}
	return c.Close()
}
