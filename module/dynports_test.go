package module

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// TestDynPortsFollowDPT: the port all listeners open as rows appear, up to
// the limit (the rest counted), never on reserved or excluded ports, and
// close when the rows go.
func TestDynPortsFollowDPT(t *testing.T) {
	v := netip.AddrFrom4([4]byte{127, 78, byte(1 + rand.IntN(250)), 100})
	base := uint16(20000 + rand.IntN(30000))
	ports := []uint16{base, base + 1, base + 2, base + 3, base + 4}
	for _, p := range ports {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(v, p).String())
		if err != nil {
			t.Skipf("port %d taken: %v", p, err)
		}
		ln.Close()
	}
	f := fleet.New()
	def := &vipa.Definition{VIPA: v, All: true, Ports: vipa.AllPortsBut(vipa.PortSet{{Lo: ports[4], Hi: ports[4]}}),
		DestIP: []string{vipa.DestAll}, Distmethod: vipa.RoundRobin, RoutingNode: "a"}
	f.Configure(fleet.Config{Node: "a", Defs: []*vipa.Definition{def}, Listeners: vipa.ListenersOff})
	d := newDynPorts(f)
	defer d.Destruct()
	d.limit = 2
	d.configure([]*vipa.Definition{def}, []uint16{ports[3]}, &Handler{fleet: f, logger: zap.NewNop()}, zap.NewNop())

	var rows []tables.Row
	for _, p := range ports {
		rows = append(rows, tables.Row{VIPA: v, Port: p, Node: "b", Address: netip.MustParseAddrPort("127.0.0.1:1"), Ready: 1})
	}
	setRows := func(rs []tables.Row) {
		f.DPT.Replace("b", rs)
		d.configure([]*vipa.Definition{def}, []uint16{ports[3]}, d.handler.Load(), zap.NewNop()) // a token, as a report's
	}
	open := func(p uint16) bool {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(v, p).String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	waitOpen := func(what string, want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for f.Counters.DynamicOpen.Load() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d ports open, want %d", what, f.Counters.DynamicOpen.Load(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	setRows(rows) // 0, 1, 2 are wanted; 3 is reserved, 4 excluded
	waitOpen("three wanted, limit 2", 2)
	if n := f.Counters.DynamicRefused.Load(); n != 1 {
		t.Fatalf("refused %d, want 1 (the port past the limit)", n)
	}
	if open(ports[3]) || open(ports[4]) {
		t.Fatal("a reserved or excluded port is open")
	}
	opened := 0
	for _, p := range ports[:3] {
		if open(p) {
			opened++
		}
	}
	if opened != 2 {
		t.Fatalf("%d of the wanted ports accept, want 2", opened)
	}

	setRows(rows[:1])
	waitOpen("one row left", 1)
	if !open(ports[0]) || open(ports[1]) || open(ports[2]) {
		t.Fatal("the open ports do not follow the rows")
	}
	setRows(nil)
	waitOpen("no row", 0)
	if open(ports[0]) {
		t.Fatal("a port without rows still accepts")
	}
}
