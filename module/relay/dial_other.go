//go:build !linux

package relay

import (
	"net/netip"
	"time"
)

// rawDial: no raw dial on this platform; Dial uses a net.Dialer.
const rawDial = false

func dialRaw(netip.AddrPort, time.Duration) (*Target, error) { panic("relay: no raw dial") }
