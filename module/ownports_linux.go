package module

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// ownListenPorts lists the TCP ports this process listens on at an address
// that is none of vipas: its admin endpoint, its gossip, its servers.
func ownListenPorts(vipas map[netip.Addr]bool) []uint16 {
	seen := make(map[uint16]bool)
	var out []uint16
	_ = eachSocket(func(fd int, _ uint64) bool {
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			return true
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || v != unix.SOCK_STREAM {
			return true
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return true
		}
		var ap netip.AddrPort
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
		default:
			return true
		}
		if !vipas[ap.Addr()] && !seen[ap.Port()] {
			seen[ap.Port()] = true
			out = append(out, ap.Port())
		}
		return true
	})
	return out
}

// dynamicLimit is MaxDynamicPorts, or a quarter of the descriptor limit
// when that is lower.
func dynamicLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur/4 < MaxDynamicPorts {
		return max(int(rl.Cur/4), 1)
	}
	return MaxDynamicPorts
}
