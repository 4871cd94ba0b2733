package fleet

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
)

// TestUpkeepProbesBack: an unhealthy row that answers again is probed
// back to healthy by the upkeep loop, not by a client.
func TestUpkeepProbesBack(t *testing.T) {
	f := New()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	v := netip.MustParseAddr("127.0.0.100")
	f.DPT.Replace("a", []tables.Row{{VIPA: v, Port: 80, Node: "a", Address: ln.Addr().(*net.TCPAddr).AddrPort(), Ready: 1}})
	tg := f.DPT.Lookup(v, 80).Targets()[0]
	if !tg.DialFailed(time.Now().Add(-tables.ProbeBackoff), true) {
		t.Fatal("a timed-out dial did not make the row unhealthy")
	}
	u := startUpkeep(f)
	defer u.stop()
	deadline := time.Now().Add(5 * time.Second)
	for tg.Health() != tables.Healthy {
		if time.Now().After(deadline) {
			t.Fatal("the row was not probed back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f.Counters.HealthUp.Load() != 1 {
		t.Errorf("healthy transitions %d, want 1", f.Counters.HealthUp.Load())
	}
}
