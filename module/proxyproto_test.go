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
