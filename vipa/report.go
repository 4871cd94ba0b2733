package vipa

import "net/netip"

// MaxReady bounds the listening sockets of one report line (SO_REUSEPORT
// instances of one port): far above any real host.
const MaxReady = 1 << 16

// Listener is one line of a target node's listener report, from the node's
// listener watch to the routing node's DPT: Ready sockets listen for
// VIPA:Port and are dialed at Address (the node's advertise address with
// Port). Weight and State are what the target says of itself: 0 and ""
// when it says nothing (weight from the routing node's config, active).
// Conns is how many established connections the target's kernel holds on
// Address from the routing node's address, for the routing node to check
// its CRT against; NoConns when the target does not say.
type Listener struct {
	VIPA    netip.Addr
	Port    uint16
	Address netip.AddrPort
	Ready   int
	Weight  int
	State   RowState
	Conns   int
}

// NoConns is a Listener's Conns when the target does not count them (a
// version 1 report).
const NoConns = -1

// MaxConns bounds a report line's Conns.
const MaxConns = 1 << 31

// Counts reports whether a socket accepting connections on addr serves
// the distributed ports of vipa for a node whose advertise address is adv
// (where the routing node dials): one on adv itself or on the wildcard of
// adv's family — never one on the VIPA. A dual-stack socket bound to ::
// accepts on 0.0.0.0 too and is listed under both (listenwatch.Snapshot);
// one with IPV6_V6ONLY only under ::, so it serves no IPv4 adv.
func Counts(addr, adv, vipa netip.Addr) bool {
	addr, adv = addr.Unmap().WithZone(""), adv.Unmap()
	switch {
	case !adv.IsValid() || addr == vipa.Unmap():
		return false
	case addr == adv:
		return true
	case addr == netip.IPv6Unspecified():
		return adv.Is6()
	case addr == netip.IPv4Unspecified():
		return adv.Is4()
	}
	return false
}
