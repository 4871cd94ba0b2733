// Package listenwatch finds the TCP listening sockets of the local host, so a
// target node can report which application instances serve a distributed
// port. On Linux it reads the kernel's socket table through NETLINK_SOCK_DIAG,
// asking only for sockets in LISTEN state, and falls back to /proc/net/tcp{,6}.
// Where no socket table can be read, a Watcher probes: it connects to the
// addresses an application would be dialed at.
package listenwatch

import "net/netip"

// Snapshot counts TCP sockets in LISTEN state per local address:port they
// accept connections on. Two SO_REUSEPORT sockets bound to one address
// count 2. A dual-stack socket on [::] (IPV6_V6ONLY off) accepts IPv4 too,
// so it counts under [::] and under 0.0.0.0; a V6ONLY one under [::]
// only. IPv4-mapped IPv6 addresses are stored unmapped; addresses carry no
// zone.
type Snapshot map[netip.AddrPort]int

// add records one listening socket under its address unmapped and without
// zone, as vipa.Counts compares it.
func (s Snapshot) add(ap netip.AddrPort) {
	s[netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())]++
}

// addListener records a listening socket bound to ap; v6only is its
// IPV6_V6ONLY flag, which matters only on [::].
func (s Snapshot) addListener(ap netip.AddrPort, v6only bool) {
	s.add(ap)
	if ap.Addr().WithZone("") == netip.IPv6Unspecified() && !v6only {
		s.add(netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port()))
	}
}
