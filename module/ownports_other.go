//go:build !linux

package module

import (
	"net/netip"

	"github.com/caddyserver/caddy/v2"
)

// ownListenPorts is, where a process's sockets cannot be listed, the
// default admin endpoint's port.
func ownListenPorts(map[netip.Addr]bool) []uint16 {
	na, err := caddy.ParseNetworkAddress(caddy.DefaultAdminListen)
	if err != nil {
		return nil
	}
	return []uint16{uint16(na.StartPort)}
}

func dynamicLimit() int { return MaxDynamicPorts }
