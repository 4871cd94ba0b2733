package module

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// proxyVersions maps the proxy_protocol option to the header version.
var proxyVersions = map[string]byte{"v1": 1, "v2": 2}

// proxyHeader is the PROXY protocol header that tells the target the
// client's address and the VIPA:port it connected to, followed by the bytes
// prefetched from the client.
func proxyHeader(version byte, client, vipa netip.AddrPort, prefetched []byte) ([]byte, error) {
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(client), net.TCPAddrFromAddrPort(vipa))
	b, err := h.Format()
	if err != nil {
		return nil, fmt.Errorf("PROXY protocol header from %s to %s: %w", client, vipa, err)
	}
	return append(b, prefetched...), nil
}
