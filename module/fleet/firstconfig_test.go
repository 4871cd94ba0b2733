package fleet

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/vipadyn"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// A node that defines and backs up nothing claims no VIPA, over real
// gossip: not when its ownership loop looks at the fleet between the
// agent's start (which joins and fetches the routing node's definition)
// and its first config, nor after that config.
func TestTargetClaimsNothingBeforeItsConfig(t *testing.T) {
	v := netip.MustParseAddr("127.0.0.100")
	def := &vipa.Definition{VIPA: v, Ports: vipa.PortSet{{Lo: 80, Hi: 80}}, DestIP: []string{vipa.DestAll}, Distmethod: vipa.RoundRobin, RoutingNode: "caddy-a"}
	start := func(name string, ip netip.Addr, join ...string) *Fleet {
		f := New()
		if err := f.Start(serfsync.Config{NodeName: name, BindAddr: netip.AddrPortFrom(ip, 0), Advertise: ip, Profile: "fast", Join: join}, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Destruct() })
		return f
	}
	a := start("caddy-a", netip.MustParseAddr("127.0.3.11"))
	a.Configure(Config{Node: "caddy-a", Defs: []*vipa.Definition{def}, Listeners: vipa.ListenersOff})
	b := start("caddy-b", netip.MustParseAddr("127.0.3.12"), a.agentOf().BindAddr().String())

	noClaim := func(when string) {
		t.Helper()
		b.dyn.update()
		rows := b.VIPADyn()
		if b.dyn.claims(v) || slices.ContainsFunc(rows, func(r vipadyn.Row) bool { return r.Status == vipa.StatusActive }) {
			t.Fatalf("caddy-b claimed %s %s: %+v", v, when, rows)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		noClaim("before its config")
		ag := b.agentOf()
		if ag.JoinTried() && ag.DefsKnown("caddy-a") && slices.ContainsFunc(ag.Definitions(), func(k serfsync.KnownDefinition) bool { return k.VIPA == v && !k.Released }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy-b never held caddy-a's definition: %v", ag.Definitions())
		}
	}
	noClaim("before its config, holding caddy-a's definition")
	b.Configure(Config{Node: "caddy-b", Listeners: vipa.ListenersOff})
	noClaim("once configured")
	if rows := b.VIPADyn(); len(rows) != 1 || rows[0].Owner != "caddy-a" || rows[0].Status != vipa.StatusNone {
		t.Fatalf("caddy-b's rows: %+v, want %s owned by caddy-a, status none", rows, v)
	}
}
