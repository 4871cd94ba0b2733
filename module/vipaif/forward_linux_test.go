//go:build linux

package vipaif

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lan is a bridge in a namespace of its own with the namespaces of two
// nodes, a (192.0.2.11, 2001:db8::11) and b (.12, ::12), and a client
// (.50, ::50) on it, made and removed by the test. The nodes forward no IP
// (net.ipv4.ip_forward and net.ipv6.conf.all.forwarding 0): Forward's
// copies must not need it.
type lan struct {
	sw, a, b, client string // namespace names
	macA, macB       string
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	id := nsID(t)
	l := &lan{sw: "vipaif-s" + id, a: "vipaif-a" + id, b: "vipaif-b" + id, client: "vipaif-c" + id}
	if err := ipCmd("netns", "add", l.sw); err != nil {
		t.Skipf("cannot make a network namespace here: %v", err)
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", l.sw) })
	if err := ipCmd("-n", l.sw, "link", "add", "br0", "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	if err := ipCmd("-n", l.sw, "link", "set", "br0", "up"); err != nil {
		t.Fatal(err)
	}
	for i, h := range []struct{ ns, addr, addr6 string }{
		{l.a, "192.0.2.11", "2001:db8::11"}, {l.b, "192.0.2.12", "2001:db8::12"}, {l.client, "192.0.2.50", "2001:db8::50"},
	} {
		if err := ipCmd("netns", "add", h.ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ipCmd("netns", "del", h.ns) })
		port := fmt.Sprintf("p%d", i)
		steps := [][]string{
			{"-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
			{"-n", l.sw, "link", "set", port, "master", "br0"},
			{"-n", l.sw, "link", "set", port, "up"},
			{"-n", h.ns, "addr", "add", h.addr + "/24", "dev", "eth0"},
			{"-n", h.ns, "addr", "add", h.addr6 + "/64", "dev", "eth0", "nodad"},
			{"-n", h.ns, "link", "set", "eth0", "up"},
			{"-n", h.ns, "link", "set", "lo", "up"},
		}
		for j, s := range steps {
			if j == len(steps)-2 {
				// No duplicate address detection for the link-local
				// address either: see below.
				in(t, h.ns, func() {
					if err := os.WriteFile("/proc/sys/net/ipv6/conf/eth0/accept_dad", []byte("0\n"), 0o644); err != nil {
						t.Errorf("accept_dad in %s: %v", h.ns, err)
					}
				})
			}
			if err := ipCmd(s...); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ns := range []string{l.a, l.b} {
		in(t, ns, func() {
			for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
				if err := os.WriteFile(f, []byte("0\n"), 0o644); err != nil {
					t.Errorf("%s in %s: %v", f, ns, err)
				} else if b, err := os.ReadFile(f); err != nil || strings.TrimSpace(string(b)) != "0" {
					t.Errorf("%s in %s reads %q, %v after writing 0", f, ns, b, err)
				}
			}
		})
	}
	if t.Failed() {
		t.FailNow()
	}
	// A node sends no neighbour solicitation while its link-local address
	// is tentative (duplicate address detection, a second or two after
	// the link comes up): until then b could not find a's MAC, and its
	// copies to a would wait there, the client retransmitting meanwhile.
	// Nodes on a real LAN are long past that.
	for _, ns := range []string{l.a, l.b, l.client} {
		waitUntil(t, 10*time.Second, "duplicate address detection to end in "+ns, func() bool {
			out, err := exec.Command("ip", "-n", ns, "-6", "addr", "show", "dev", "eth0", "tentative").CombinedOutput()
			return err == nil && strings.TrimSpace(string(out)) == ""
		})
	}
	lk := &link{}
	l.macA = lk.mac(t, l.a, "eth0")
	l.macB = lk.mac(t, l.b, "eth0")
	return l
}

// manager is a Manager of eth0 in namespace ns, closed there at cleanup.
func (l *lan) manager(t *testing.T, ns string) *Manager {
	t.Helper()
	var m *Manager
	var err error
	in(t, ns, func() { m, err = New("eth0") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in(t, ns, func() { _ = m.Close(); _ = m.Unforward(forwardVIPA); _ = m.Unforward(forwardVIPA6) })
	})
	return m
}

func (l *lan) do(t *testing.T, ns string, op func() error) {
	t.Helper()
	var err error
	in(t, ns, func() { err = op() })
	if err != nil {
		t.Fatal(err)
	}
}

func (l *lan) neigh(t *testing.T, ip string) string {
	return (&link{client: l.client, clientIf: "eth0"}).neigh(t, ip)
}

// nft runs an nft script in namespace ns; a missing nft skips the test.
func nft(t *testing.T, ns, script string) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the client's half-open handshake needs nft (nftables); .ci/run installs it")
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", ns, err, out)
	}
}

// tables lists the nftables tables in namespace ns.
func tables(t *testing.T, ns string) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("listing nftables tables needs nft; .ci/run installs it")
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables in %s: %v: %s", ns, err, out)
	}
	return string(out)
}

var (
	forwardVIPA  = netip.MustParseAddr("192.0.2.100")
	forwardVIPA6 = netip.MustParseAddr("2001:db8::100")
)

// serve answers each line a client sends to vipa:80 in namespace ns with
// name, ':' and the line.
func serve(t *testing.T, ns, name string, vipa netip.Addr) {
	t.Helper()
	var ln net.Listener
	var err error
	in(t, ns, func() { ln, err = net.Listen("tcp", netip.AddrPortFrom(vipa, 80).String()) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = io.WriteString(c, name+":"+line)
				}
			}()
		}
	}()
}

// nftFamily is nft's name of vipa's family: ip or ip6.
func nftFamily(vipa netip.Addr) string {
	if vipa.Is4() {
		return "ip"
	}
	return "ip6"
}

// halfOpen connects the client to the VIPA, a's, and holds back the
// client's segments after its SYN: a has the handshake half-open (its
// SYN-ACK answered by nothing), the client takes it as done.
func (l *lan) halfOpen(t *testing.T, vipa netip.Addr) net.Conn {
	t.Helper()
	fam := nftFamily(vipa)
	nft(t, l.client, "table "+fam+" hold {\n chain out {\n type filter hook output priority 0\n "+fam+" daddr "+vipa.String()+" tcp flags & syn == 0 drop\n }\n}\n")
	var c net.Conn
	var err error
	in(t, l.client, func() { c, err = net.DialTimeout("tcp", netip.AddrPortFrom(vipa, 80).String(), 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if got := l.neigh(t, vipa.String()); got != l.macA {
		t.Fatalf("the client reached the VIPA through %q, not a (%s)", got, l.macA)
	}
	return c
}

// finish lets the client's segments go again, now to b, and sends a line.
func (l *lan) finish(t *testing.T, c net.Conn, vipa netip.Addr) (string, error) {
	t.Helper()
	waitUntil(t, 10*time.Second, "the client's entry for the VIPA to move to b", func() bool {
		return l.neigh(t, vipa.String()) == l.macB
	})
	nft(t, l.client, "delete table "+nftFamily(vipa)+" hold")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// TestForwardHalfOpenHandshake: a handshake the old owner a began and
// whose end reaches the new owner b (the client's neighbour entry moved on
// b's announcement) is reset by b's kernel; with Forward to a, b passes
// the segments on and the connection is a's, while a new connection is
// b's; Unforward leaves nothing.
func TestForwardHalfOpenHandshake(t *testing.T) {
	forwardHalfOpen(t, forwardVIPA, netip.MustParseAddr("192.0.2.11"))
}

// TestForwardHalfOpenHandshakeIPv6: the same for an IPv6 VIPA: an ip6
// table, a's address found on the link by neighbour discovery, the
// client's entry moved by b's unsolicited neighbour advertisement.
func TestForwardHalfOpenHandshakeIPv6(t *testing.T) {
	forwardHalfOpen(t, forwardVIPA6, netip.MustParseAddr("2001:db8::11"))
}

// forwardHalfOpen is TestForwardHalfOpenHandshake for vipa, with a's
// address on the link aAddr.
func forwardHalfOpen(t *testing.T, vipa, aAddr netip.Addr) {
	l := newLAN(t)
	ma, mb := l.manager(t, l.a), l.manager(t, l.b)
	l.do(t, l.a, func() error { return ma.Own(vipa) })
	in(t, l.a, func() { ma.Quiet(vipa) }) // handing over: a's repeats must not move the client back
	serve(t, l.a, "a", vipa)

	// Without forwarding: b's kernel knows no such connection.
	c := l.halfOpen(t, vipa)
	l.do(t, l.b, func() error { return mb.Own(vipa) })
	if line, err := l.finish(t, c, vipa); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("without forwarding, the handshake finished at b: %q, %v; want a reset", line, err)
	}
	c.Close()

	// Back to a, as before the hand-over.
	l.do(t, l.b, func() error { return mb.Release(vipa) })
	l.do(t, l.a, func() error { return ma.Own(vipa) })
	waitUntil(t, 10*time.Second, "the client's entry for the VIPA to move back to a", func() bool {
		return l.neigh(t, vipa.String()) == l.macA
	})
	in(t, l.a, func() { ma.Quiet(vipa) })

	// With forwarding, set up before b adds the address, as a hand-over does.
	c = l.halfOpen(t, vipa)
	l.do(t, l.b, func() error { return mb.Forward(vipa, aAddr) })
	l.do(t, l.b, func() error { return mb.Own(vipa) })
	serve(t, l.b, "b", vipa)
	line, err := l.finish(t, c, vipa)
	if err != nil || line != "a:hello\n" {
		t.Fatalf("with forwarding: %q, %v; want a's answer", line, err)
	}
	// A new connection is b's: SYNs are not forwarded.
	var nc net.Conn
	in(t, l.client, func() { nc, err = net.DialTimeout("tcp", netip.AddrPortFrom(vipa, 80).String(), 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "new\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(nc).ReadString('\n'); err != nil || line != "b:new\n" {
		t.Fatalf("a new connection during forwarding: %q, %v; want b's answer", line, err)
	}

	if got := l.neigh(t, vipa.String()); got != l.macB {
		t.Fatalf("the client's entry for the VIPA went back to %s", got)
	}
	name := ForwardTablePrefix + strings.NewReplacer(".", "_", ":", "_").Replace(vipa.String())
	out, err := exec.Command("ip", "netns", "exec", l.b, "nft", "list", "table", nftFamily(vipa), name).CombinedOutput()
	if err != nil || !regexp.MustCompile(`ct state new counter packets [1-9]`).Match(out) ||
		!strings.Contains(string(out), "dup to "+aAddr.String()+" device") {
		t.Fatalf("b's forwarding table: %v: %s", err, out)
	}
	t.Logf("b's forwarding table:\n%s", out)
	l.do(t, l.b, func() error { return mb.Unforward(vipa) })
	l.do(t, l.b, func() error { return mb.Unforward(vipa) })
	if got := tables(t, l.b); got != "" {
		t.Fatalf("b's tables after Unforward: %q", got)
	}
}

// TestForwardNotOnLink: an old owner reached through a gateway, this
// node's own address, or one of the other family is refused, for an IPv4
// and an IPv6 VIPA, and no table is left.
func TestForwardNotOnLink(t *testing.T) {
	l := newLAN(t)
	mb := l.manager(t, l.b)
	for _, r := range [][]string{{"198.51.100.0/24", "via", "192.0.2.1"}, {"2001:db8:1::/64", "via", "2001:db8::1"}} {
		if err := ipCmd(append([]string{"-n", l.b, "route", "add"}, r...)...); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		vipa netip.Addr
		to   []string
	}{
		{forwardVIPA, []string{"198.51.100.7", "192.0.2.12", "fd00::11", "2001:db8::11"}},
		{forwardVIPA6, []string{"2001:db8:1::7", "2001:db8::12", "192.0.2.11"}},
	} {
		for _, to := range c.to {
			var err error
			in(t, l.b, func() { err = mb.Forward(c.vipa, netip.MustParseAddr(to)) })
			if !errors.Is(err, ErrNotOnLink) {
				t.Errorf("Forward of %s to %s: %v, want ErrNotOnLink", c.vipa, to, err)
			}
		}
	}
	if got := tables(t, l.b); got != "" {
		t.Fatalf("b's tables after refused forwards: %q", got)
	}
}
