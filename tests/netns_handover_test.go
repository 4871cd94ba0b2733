//go:build linux

package tests

import (
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/caddy-vipa/caddy-vipa/module/vipaif"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// handoverForwards lists, for each hand-over forwarding table in the
// host's namespace, the addresses its rules pass segments to.
func handoverForwards(h *netlab.Host) (map[string][]netip.Addr, error) {
	out := map[string][]netip.Addr{}
	err := h.Run(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := c.ListTables()
		if err != nil {
			return err
		}
		for _, tb := range tables {
			if !strings.HasPrefix(tb.Name, vipaif.ForwardTablePrefix) {
				continue
			}
			out[tb.Name] = nil
			rules, err := c.GetRules(tb, &nftables.Chain{Name: "prerouting", Table: tb})
			if err != nil {
				return err
			}
			// The library does not decode dup: the address it passes
			// segments to is the one immediate loaded into register 1.
			for _, r := range rules {
				for _, e := range r.Exprs {
					if im, ok := e.(*expr.Immediate); ok && im.Register == 1 {
						if to, ok := netip.AddrFromSlice(im.Data); ok {
							out[tb.Name] = append(out[tb.Name], to)
						}
					}
				}
			}
		}
		return nil
	})
	return out, err
}

// TestLabHandOverForwards: a node taking a VIPA back from a live backup
// passes that backup, for a window after its claim, the segments of
// connections it does not know (a handshake the backup began): a table of
// its own whose rules dup them to the backup's address; the table goes
// when the window ends. A takeover from a killed owner forwards nothing,
// and graceful stops leave no table behind.
func TestLabHandOverForwards(t *testing.T) {
	f := startTakeoverFleet(t, nil)
	table := vipaif.ForwardTablePrefix + strings.ReplaceAll(f.vipa.String(), ".", "_")

	f.kill(t, "a", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"b": "active"}, "caddy-b")
	f.waitOwnerOnLAN(t, "b")
	if fw, err := handoverForwards(f.lab.Node("b")); err != nil || len(fw) != 0 {
		t.Fatalf("b, taking over from a killed a, forwards %v (%v); want nothing", fw, err)
	}

	// Watch a's namespace from before it returns: the window is short.
	var mu sync.Mutex
	var seen []netip.Addr
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if fw, err := handoverForwards(f.lab.Node("a")); err == nil && len(fw[table]) > 0 {
				mu.Lock()
				seen = fw[table]
				mu.Unlock()
			}
		}
	}()
	f.restart(t, "a")
	f.waitStatus(t, map[string]string{"a": "active", "b": "backup", "c": "backup"}, "caddy-a")
	f.waitOwnerOnLAN(t, "a")
	b := f.lab.Node("b").IP
	waitFor(t, 10*time.Second, "a to forward to b while it took the VIPA back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0
	})
	close(stop)
	<-watched
	for _, to := range seen {
		if to != b {
			t.Fatalf("a forwards to %v; want b's address %s", seen, b)
		}
	}
	if !strings.Contains(f.nodes["a"].log.String(), `"previous_owner":"caddy-b","address":"`+b.String()+`"`) {
		t.Errorf("a's log does not name b as the previous owner it forwards to")
	}
	waitFor(t, 15*time.Second, "a's forwarding to end after its window", func() bool {
		fw, err := handoverForwards(f.lab.Node("a"))
		return err == nil && len(fw) == 0
	})

	// Graceful stops, each hand-over to a live node: nothing left behind.
	f.kill(t, "a", syscall.SIGTERM)
	f.waitStatus(t, map[string]string{"b": "active"}, "caddy-b")
	f.kill(t, "b", syscall.SIGTERM)
	f.waitStatus(t, map[string]string{"c": "active"}, "caddy-c")
	f.kill(t, "c", syscall.SIGTERM)
	for _, h := range f.lab.Nodes {
		if fw, err := handoverForwards(h); err != nil || len(fw) != 0 {
			t.Errorf("after a graceful stop, caddy-%s's namespace holds %v (%v)", h.Name, fw, err)
		}
	}
}

// TestLabHandOverLeftoverRemoved: a process killed while it forwarded
// leaves its hand-over table behind (it is the kernel's, not the
// process's). Each node finds one made by Forward, as that process would
// have, when it starts; the first configure removes it, since none of
// them is forwarding then.
func TestLabHandOverLeftoverRemoved(t *testing.T) {
	var table string
	f := startTakeoverFleet(t, func(n *netlab.Node) {
		vipa, to := n.Addr(), n.Seed.IP // a forwards to b, the others to a
		if n.Host == n.Seed {
			to = n.Peers[0].IP
		}
		table = vipaif.ForwardTablePrefix + strings.ReplaceAll(vipa.String(), ".", "_")
		err := n.Host.Run(func() error {
			m, err := vipaif.New("eth0")
			if err != nil {
				return err
			}
			return m.Forward(vipa, to)
		})
		if err != nil {
			t.Fatalf("caddy-%s: leaving a hand-over table behind: %v", n.Host.Name, err)
		}
		if fw, err := handoverForwards(n.Host); err != nil || len(fw[table]) == 0 {
			t.Fatalf("caddy-%s's leftover table: %v (%v)", n.Host.Name, fw, err)
		}
	})
	for _, h := range f.lab.Nodes {
		if fw, err := handoverForwards(h); err != nil || len(fw) != 0 {
			t.Errorf("caddy-%s, started and routing or backing up the VIPA, still holds %v (%v)", h.Name, fw, err)
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("%s, left in each node's namespace before it started, is gone on all three", table)
}
