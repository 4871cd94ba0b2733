package listenwatch

import "net/netip"

// tcpEstablished is TCP_ESTABLISHED from the kernel's tcp_states.h.
const tcpEstablished = 0x01

// ConnKey names the established connections between one local address:port
// and one remote address (any remote port).
type ConnKey struct {
	Local  netip.AddrPort
	Remote netip.Addr
}

// Conns counts TCP sockets in ESTABLISHED state per local address:port and
// remote address. Addresses are stored unmapped and without zone, as in a
// Snapshot.
type Conns map[ConnKey]int

// Count returns how many established connections this node holds on port,
// dialed to its address local from the address remote: the connections a
// routing node relays to this target. Lookups are direct.
func (c Conns) Count(port uint16, local, remote netip.Addr) int {
	if !local.IsValid() || !remote.IsValid() {
		return 0
	}
	return c[ConnKey{
		Local:  netip.AddrPortFrom(local.Unmap().WithZone(""), port),
		Remote: remote.Unmap().WithZone(""),
	}]
}

// table is what one scan fills: a Snapshot takes LISTEN sockets, Conns
// takes ESTABLISHED ones. The kernel filters by state where it can.
// v6only is an IPv6 socket's IPV6_V6ONLY flag.
type table interface {
	state() uint8
	addSocket(local, remote netip.AddrPort, v6only bool)
	reset()
}

func (Snapshot) state() uint8                                     { return tcpListen }
func (s Snapshot) addSocket(local, _ netip.AddrPort, v6only bool) { s.addListener(local, v6only) }
func (s Snapshot) reset()                                         { clear(s) }
func (Conns) state() uint8                                        { return tcpEstablished }
func (c Conns) addSocket(local, remote netip.AddrPort, _ bool)    { c.add(local, remote.Addr()) }
func (c Conns) reset()                                            { clear(c) }

func (c Conns) add(local netip.AddrPort, remote netip.Addr) {
	c[ConnKey{
		Local:  netip.AddrPortFrom(local.Addr().Unmap().WithZone(""), local.Port()),
		Remote: remote.Unmap().WithZone(""),
	}]++
}

// ScanConns reads the kernel's table of established TCP connections once,
// the way Scan reads the listening sockets.
func ScanConns() (Conns, error) {
	sc, err := newScanner()
	if err != nil {
		return nil, err
	}
	defer sc.close()
	c := make(Conns)
	if err := sc.scanTable(c); err != nil {
		return nil, err
	}
	return c, nil
}
