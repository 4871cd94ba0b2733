package listenwatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// tcpListen is TCP_LISTEN from the kernel's tcp_states.h, the "st" column of
// /proc/net/tcp and the idiag_state of a sock_diag reply.
const tcpListen = 0x0A

// parseProcNetTCP adds the sockets in t's state of a /proc/net/tcp or
// /proc/net/tcp6 table to t. The first line is the column header. The table
// does not show IPV6_V6ONLY: v6only is the flag every socket is taken to
// have (for tcp6, the host's default, net.ipv6.bindv6only).
func parseProcNetTCP(data []byte, t table, v6only bool) error {
	header, rest, _ := bytes.Cut(data, []byte{'\n'})
	if !bytes.HasPrefix(bytes.TrimLeft(header, " "), []byte("sl")) {
		return errors.New("missing header line")
	}
	for n := 2; len(rest) > 0; n++ {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		local, remote, match, err := parseProcNetTCPLine(line, t.state())
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if match {
			t.addSocket(local, remote, v6only)
		}
	}
	return nil
}

// parseProcNetTCPLine reads one socket line ("sl local rem st ...") and
// reports whether it is in state want and, if so, its local and remote
// addresses. The addresses of other sockets are not decoded: they are not
// needed and most lines on a busy host are in another state.
func parseProcNetTCPLine(line []byte, want uint8) (local, remote netip.AddrPort, match bool, err error) {
	sl, line := nextField(line)
	loc, line := nextField(line)
	rem, line := nextField(line)
	st, _ := nextField(line)
	if len(st) == 0 || len(sl) < 2 || sl[len(sl)-1] != ':' {
		return local, remote, false, errors.New("malformed socket line")
	}
	if len(rem) == 0 {
		return local, remote, false, errors.New("missing remote address")
	}
	state, ok := parseHex(st, 2)
	if !ok {
		return local, remote, false, fmt.Errorf("bad state %q", st)
	}
	if state != uint64(want) {
		return local, remote, false, nil
	}
	if local, err = parseProcAddrPort(loc); err != nil {
		return netip.AddrPort{}, remote, false, err
	}
	if want == tcpListen {
		return local, remote, true, nil // a listener has no peer
	}
	if remote, err = parseProcAddrPort(rem); err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, false, err
	}
	return local, remote, true, nil
}

// parseProcAddrPort decodes "0100007F:1F90". The kernel prints each 32-bit
// word of the address as a host-order integer, so the bytes come back through
// the native byte order.
func parseProcAddrPort(b []byte) (netip.AddrPort, error) {
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", b)
	}
	hexAddr, hexPort := b[:i], b[i+1:]
	port, ok := parseHex(hexPort, 4)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", b)
	}
	var raw [16]byte
	switch len(hexAddr) {
	case 8, 32:
		for w := 0; w < len(hexAddr)/8; w++ {
			v, ok := parseHex(hexAddr[w*8:w*8+8], 8)
			if !ok {
				return netip.AddrPort{}, fmt.Errorf("bad address %q", b)
			}
			binary.NativeEndian.PutUint32(raw[w*4:], uint32(v))
		}
	default:
		return netip.AddrPort{}, fmt.Errorf("bad address length in %q", b)
	}
	var addr netip.Addr
	if len(hexAddr) == 8 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// nextField splits off the next space-separated field without allocating.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

// parseHex reads 1 to maxDigits hex digits; strconv would need a string.
func parseHex(b []byte, maxDigits int) (uint64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}
