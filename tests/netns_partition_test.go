//go:build linux

package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// TestLabPartitionHeals: the owner's link goes down, b takes over on its
// side; when the link comes back exactly one owner remains (the configured
// one), the other gives the address up, and the client's connections
// reach a again.
func TestLabPartitionHeals(t *testing.T) {
	f := startTakeoverFleet(t, nil)
	a := f.lab.Node("a")
	if err := a.Cut(); err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, map[string]string{"b": "active", "c": "backup"}, "caddy-b")
	waitFor(t, 15*time.Second, "b to hold the VIPA", func() bool { return f.lab.Node("b").Holds(netlab.VIPAPrefix()) })
	waitFor(t, 15*time.Second, "a client connection through b", func() bool {
		_, err := clientGreeting(f.lab, 2*time.Second)
		return err == nil
	})

	// b keeps it while a is cut off: a's last definition is no rival
	// definer, so b neither logs a conflict nor yields to a.
	for range 100 {
		r, err := f.vipadyn("b")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != "active" || r.Owner != "caddy-b" || !f.lab.Node("b").Holds(netlab.VIPAPrefix()) {
			t.Fatalf("while a is cut off caddy-b gave the VIPA up: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// b took a as down before it claimed the VIPA (or serf had removed a's
	// rows), so a's rows were unhealthy before any client came: no
	// connection waited out a dial timeout on a target across the cut.
	if log := f.nodes["b"].log.String(); strings.Contains(log, `"dialing target failed; trying the next","node":"caddy-a"`) {
		t.Fatal("b routed a connection to a's row after taking a as down")
	}

	// A connection through b just before the heal: the client's neighbour
	// entry for the VIPA is b's and fresh, so only an announcement moves
	// it to a (a never gave the address up; b may give it up before a
	// has seen its claim).
	waitFor(t, 15*time.Second, "a client connection through b before the heal", func() bool {
		_, err := clientGreeting(f.lab, 2*time.Second)
		return err == nil
	})
	if err := a.Heal(); err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, map[string]string{"a": "active", "b": "backup", "c": "backup"}, "caddy-a")
	f.waitOwnerOnLAN(t, "a")
	// One owner, and it stays one: no node but a holds the address or
	// calls itself active over the next seconds.
	for range 20 {
		for _, name := range []string{"a", "b", "c"} {
			r, err := f.vipadyn(name)
			if err != nil {
				t.Fatal(err)
			}
			if (r.Status == "active") != (name == "a") || r.Owner != "caddy-a" {
				t.Fatalf("after the heal caddy-%s shows %+v", name, r)
			}
			if f.lab.Node(name).Holds(netlab.VIPAPrefix()) != (name == "a") {
				t.Fatalf("after the heal the VIPA's holders disagree with a alone (caddy-%s)", name)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
