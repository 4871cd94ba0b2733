//go:build !linux

package relay

import (
	"net/netip"
	"time"
)

// dialRaw: no raw dial on this platform; Dial uses a net.Dialer.
func dialRaw(addr netip.AddrPort, timeout time.Duration) (*Target, bool, error) {
	return nil, false, nil
}
