package module

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// proxyVersions maps the proxy_protocol option to the header version.
var proxyVersions = map[string]byte{"v1": 1, "v2": 2}

// sigV2 opens every PROXY protocol v2 header.
const sigV2 = "\r\n\r\n\x00\r\nQUIT\n"

// proxyHeader is the PROXY protocol header that tells the target the
// client's address and the VIPA:port it connected to, followed by the bytes
// prefetched from the client. TCP4 when both addresses are IPv4, else TCP6
// (an IPv4 one then mapped); UNKNOWN (v1) or LOCAL (v2) when an address is
// missing: the header go-proxyproto formats from the same addresses, byte
// for byte (TestProxyHeaderBytes), built here with the small frames the
// handler's stack has room for.
func proxyHeader(version byte, client, vipa netip.AddrPort, prefetched []byte) []byte {
	src, dst := client.Addr().Unmap(), vipa.Addr().Unmap()
	known := src.IsValid() && dst.IsValid()
	v4 := src.Is4() && dst.Is4()
	if !v4 {
		src, dst = netip.AddrFrom16(src.As16()), netip.AddrFrom16(dst.As16())
	}
	b := make([]byte, 0, 108+len(prefetched))
	if version == 1 {
		switch {
		case !known:
			b = append(b, "PROXY UNKNOWN\r\n"...)
		case v4:
			b = append(b, "PROXY TCP4 "...)
		default:
			b = append(b, "PROXY TCP6 "...)
		}
		if known {
			b = src.AppendTo(b)
			b = append(b, ' ')
			b = dst.AppendTo(b)
			b = append(b, ' ')
			b = strconv.AppendUint(b, uint64(client.Port()), 10)
			b = append(b, ' ')
			b = strconv.AppendUint(b, uint64(vipa.Port()), 10)
			b = append(b, "\r\n"...)
		}
		return append(b, prefetched...)
	}
	b = append(b, sigV2...)
	switch {
	case !known:
		b = append(b, 0x20, 0x00, 0, 0) // LOCAL, UNSPEC, no addresses
	case v4:
		s, d := src.As4(), dst.As4()
		b = append(b, 0x21, 0x11, 0, 12) // PROXY, TCP over IPv4
		b = append(append(b, s[:]...), d[:]...)
	default:
		s, d := src.As16(), dst.As16()
		b = append(b, 0x21, 0x21, 0, 36) // PROXY, TCP over IPv6
		b = append(append(b, s[:]...), d[:]...)
	}
	if known {
		b = binary.BigEndian.AppendUint16(b, client.Port())
		b = binary.BigEndian.AppendUint16(b, vipa.Port())
	}
	return append(b, prefetched...)
}
