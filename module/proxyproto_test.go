package module

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
)

// proxyBackend reads a PROXY protocol header from each connection and
// answers with the version and addresses it carried, then echoes.
func proxyBackend(t *testing.T) netip.AddrPort {
	t.Helper()
	_, addr := serveTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		h, err := proxyproto.Read(r)
		if err != nil {
			fmt.Fprintf(c, "no header: %v\n", err)
			return
		}
		fmt.Fprintf(c, "v%d %s %s\n", h.Version, h.SourceAddr, h.DestinationAddr)
		_, _ = io.Copy(c, r)
	})
	return addr
}

func TestHandlerProxyProtocol(t *testing.T) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			vln := listenVIPA(t)
			h, f, vipa := testHandler(t, vln)
			h.ProxyProtocol = version
			h.proxyVersion = proxyVersions[version]
			setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "b", Address: proxyBackend(t), Ready: 1})
			c, done := through(t, h, vln, []byte("first "))
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.WriteString(c, "second\n"); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(c)
			got, err := r.ReadString('\n')
			if want := fmt.Sprintf("%s %s %s\n", version, c.LocalAddr(), vipa); err != nil || got != want {
				t.Fatalf("the target heard %q (%v), want %q", got, err, want)
			}
			// The prefetched bytes follow the header, then the client's.
			if got, err := r.ReadString('\n'); err != nil || got != "first second\n" {
				t.Fatalf("echo %q, %v", got, err)
			}
			c.Close()
			waitCRTEmpty(t, f)
		})
	}
}

// TestProxyHeaderBytes: the header is the one go-proxyproto formats from
// the same addresses, for every family pairing and a missing address.
func TestProxyHeaderBytes(t *testing.T) {
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.7:40000"),
		netip.MustParseAddrPort("10.1.2.3:443"),
		netip.MustParseAddrPort("[2001:db8::7]:65535"),
		netip.MustParseAddrPort("[fe80::1%lo]:0"),
		netip.MustParseAddrPort("[::ffff:198.51.100.9]:80"),
		{},
	}
	for _, version := range []byte{1, 2} {
		for _, client := range addrs {
			for _, vipa := range addrs {
				h := proxyproto.HeaderProxyFromAddrs(version, tcpAddr(client), tcpAddr(vipa))
				want, err := h.Format()
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, "pre"...)
				if got := proxyHeader(version, client, vipa, []byte("pre")); string(got) != string(want) {
					t.Errorf("v%d %s -> %s: %q, go-proxyproto formats %q", version, client, vipa, got, want)
				}
			}
		}
	}
}

// tcpAddr is the net.Addr a connection reports for a; none for the zero
// AddrPort.
func tcpAddr(a netip.AddrPort) net.Addr {
	if !a.IsValid() {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(a)
}
