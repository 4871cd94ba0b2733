package fleet

import (
	"net/netip"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestWithConns(t *testing.T) {
	a := netip.MustParseAddr
	v := a("127.0.0.100")
	c := listenwatch.Conns{
		{Local: netip.MustParseAddrPort("127.0.0.2:80"), Remote: a("127.0.0.1")}: 4,
		{Local: netip.MustParseAddrPort("127.0.0.2:80"), Remote: a("127.0.0.9")}: 7, // a client dialing directly
	}
	lines := []vipa.Listener{
		{VIPA: v, Port: 80, Address: netip.MustParseAddrPort("127.0.0.2:80"), Ready: 1},
		{VIPA: v, Port: 81, Address: netip.MustParseAddrPort("127.0.0.2:81"), Ready: 1},
		{VIPA: a("127.0.0.200"), Port: 80, Address: netip.MustParseAddrPort("127.0.0.2:80"), Ready: 1}, // routing node unknown
	}
	withConns(lines, c, map[netip.Addr]netip.Addr{v: a("127.0.0.1")})
	if lines[0].Conns != 4 || lines[1].Conns != 0 || lines[2].Conns != vipa.NoConns {
		t.Errorf("conns %d %d %d, want 4 0 %d", lines[0].Conns, lines[1].Conns, lines[2].Conns, vipa.NoConns)
	}
	withConns(lines, nil, map[netip.Addr]netip.Addr{v: a("127.0.0.1")})
	if lines[0].Conns != vipa.NoConns {
		t.Errorf("without a count: %d", lines[0].Conns)
	}
}

// A reported count is compared with the row's active connections; a drift
// at two checks in a row is logged once; its end is logged; the routing
// node's own row and a row without a count are not checked.
func TestCheckDrift(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	f := New()
	f.logger = zap.New(core)
	f.cfg.Node = "a"
	v := netip.MustParseAddr("127.0.0.100")
	row := func(node, addr string) tables.Row {
		return tables.Row{VIPA: v, Port: 80, Node: node, Address: netip.MustParseAddrPort(addr), Ready: 1, Weight: 1}
	}
	f.DPT.Replace("a", []tables.Row{row("a", "127.0.0.1:80")})
	f.DPT.Replace("b", []tables.Row{row("b", "127.0.0.2:80")})
	f.DPT.Replace("c", []tables.Row{row("c", "127.0.0.3:80")})
	line := func(conns int) []vipa.Listener { return []vipa.Listener{{VIPA: v, Port: 80, Ready: 1, Conns: conns}} }
	f.heldArrived("a", line(5))
	f.heldArrived("b", line(2))
	f.heldArrived("c", line(vipa.NoConns))

	drifts := func() map[string]int64 {
		out := map[string]int64{}
		for _, d := range f.Drifts() {
			out[d.Node] = d.Drift
		}
		return out
	}
	warns := func() int { return logs.FilterMessageSnippet("CRT drift:").Len() }

	f.checkDrift()
	if d := drifts(); len(d) != 1 || d["b"] != -2 {
		t.Fatalf("drifts %v, want only b: -2", d)
	}
	if warns() != 0 {
		t.Fatal("logged after one check")
	}
	f.checkDrift()
	f.checkDrift()
	if warns() != 1 {
		t.Fatalf("%d warnings after three checks, want 1", warns())
	}
	w := logs.FilterMessageSnippet("CRT drift:").All()[0]
	if w.Level != zapcore.WarnLevel || w.ContextMap()["crt_active"] != int64(0) || w.ContextMap()["target_held"] != int64(2) {
		t.Errorf("warning %v %v", w.Level, w.ContextMap())
	}
	f.heldArrived("b", line(0))
	f.checkDrift()
	if d := drifts(); d["b"] != 0 || logs.FilterMessage("CRT drift ended").Len() != 1 {
		t.Errorf("after agreement: %v, ended logged %d", d, logs.FilterMessage("CRT drift ended").Len())
	}
	// A member gone takes its rows' drift with it.
	f.heldArrived("b", nil)
	if d := drifts(); len(d) != 0 {
		t.Errorf("after the member left: %v", d)
	}
}
