//go:build !linux

package relay

import (
	"net"
	"net/netip"
	"time"
)

// Splices reports whether Join relays client and target in the kernel; not
// on this platform.
func Splices(client, target net.Conn) bool { return false }

// fastRelay: no kernel fast path on this platform.
func fastRelay(client, target net.Conn, o *Options) runner { return nil }

// dialRaw: no raw dial on this platform.
func dialRaw(addr netip.AddrPort, timeout time.Duration) (*Target, bool, error) {
	return nil, false, nil
}
