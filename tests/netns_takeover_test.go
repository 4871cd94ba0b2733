//go:build linux

package tests

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// takeoverFleet is a lab where a routes the VIPA and b (rank 200) and c
// (rank 100) back it up, all managing the address on the lab interface.
type takeoverFleet struct {
	vipa    netip.Addr
	lab     *netlab.Lab
	configs map[string]netlab.Node
	nodes   map[string]*labNode
}

// startTakeoverFleet starts it and waits until a owns the VIPA, b and c
// are its backups on every node's view, and the client reaches it.
// tune adjusts a node's configuration.
func startTakeoverFleet(t *testing.T, tune func(*netlab.Node)) *takeoverFleet {
	t.Helper()
	return startTakeoverFleetOf(t, nil, tune)
}

// startTakeoverFleetOf is startTakeoverFleet with more nodes: targets that
// neither route nor back up the VIPA.
func startTakeoverFleetOf(t *testing.T, targets []string, tune func(*netlab.Node)) *takeoverFleet {
	t.Helper()
	l := newLab(t, append([]string{"a", "b", "c"}, targets...)...)
	labApps(t, l)
	a := l.Node("a")
	f := &takeoverFleet{lab: l, configs: map[string]netlab.Node{}, nodes: map[string]*labNode{}}
	nodes := []netlab.Node{
		{Host: a, Seed: a, Peers: []*netlab.Host{l.Node("b"), l.Node("c")}, Define: true},
		{Host: l.Node("b"), Seed: a, Rank: 200},
		{Host: l.Node("c"), Seed: a, Rank: 100},
	}
	for _, n := range nodes {
		n.Fast, n.Interface, n.Layer4 = true, true, true
		if tune != nil {
			tune(&n)
		}
		f.configs[n.Host.Name] = n
		f.vipa = n.Addr()
	}
	for _, name := range targets {
		f.configs[name] = netlab.Node{Host: l.Node(name), Seed: a, Fast: true}
	}
	var all []*labNode
	for _, h := range l.Nodes {
		n := f.configs[h.Name]
		f.nodes[h.Name] = startLabCaddy(t, n.Host, n.Caddyfile())
		all = append(all, f.nodes[h.Name])
	}
	waitLabFleet(t, all)
	f.waitStatus(t, map[string]string{"a": "active", "b": "backup", "c": "backup"}, "caddy-a")
	f.waitOwnerOnLAN(t, "a")
	return f
}

// vipadyn is the node's row for the lab's VIPA.
func (f *takeoverFleet) vipadyn(name string) (vipadynRow, error) {
	var rows []vipadynRow
	if err := harness.GetJSON(f.nodes[name].client, labAdmin, "/vipa/vipadyn", &rows); err != nil {
		return vipadynRow{}, err
	}
	for _, r := range rows {
		if r.VIPA == f.vipa.String() {
			return r, nil
		}
	}
	return vipadynRow{}, fmt.Errorf("caddy-%s's /vipa/vipadyn has no row for %s: %+v", name, f.vipa, rows)
}

// waitStatus waits until each named node shows its status for the VIPA and
// names owner as the owner.
func (f *takeoverFleet) waitStatus(t *testing.T, want map[string]string, owner string) {
	t.Helper()
	var last string
	ok := func() bool {
		var got []string
		good := true
		for name, status := range want {
			r, err := f.vipadyn(name)
			got = append(got, fmt.Sprintf("%s: %+v %v", name, r, err))
			if err != nil || r.Status != status || r.Owner != owner {
				good = false
			}
		}
		last = strings.Join(got, "; ")
		return good
	}
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for statuses %v with owner %s; last seen %s", want, owner, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitOwnerOnLAN waits until only the named node holds the VIPA, the
// client's neighbour entry points at it and a new connection succeeds.
func (f *takeoverFleet) waitOwnerOnLAN(t *testing.T, name string) {
	t.Helper()
	owner := f.lab.Node(name)
	waitFor(t, 15*time.Second, "the VIPA on caddy-"+name+" alone", func() bool {
		for _, h := range f.lab.Nodes {
			if h.Holds(netlab.HostPrefix(f.vipa)) != (h == owner) && f.alive(h.Name) {
				return false
			}
		}
		return owner.Holds(netlab.HostPrefix(f.vipa))
	})
	waitFor(t, 15*time.Second, "a client connection through the VIPA", func() bool {
		_, err := clientGreetingAt(f.lab, f.vipa, 2*time.Second)
		return err == nil
	})
	waitFor(t, 3*time.Second, "the client's neighbour entry to point at caddy-"+name, func() bool {
		return clientNeighOf(t, f.lab, f.vipa) == owner.MAC
	})
}

// alive: the node's Caddy runs (a killed one leaves its address behind,
// as a crashed host's would stay).
func (f *takeoverFleet) alive(name string) bool {
	select {
	case <-f.nodes[name].exited:
		return false
	default:
		return true
	}
}

func (f *takeoverFleet) kill(t *testing.T, name string, sig syscall.Signal) {
	t.Helper()
	p := f.nodes[name]
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("caddy-%s did not exit after %v", name, sig)
	}
}

// restart starts the node again with its configuration.
// holdThroughBackup SIGKILLs a, waits until b owns the VIPA on the LAN,
// and opens a connection through it, greeted by b's target; it closes
// when the test ends.
func (f *takeoverFleet) holdThroughBackup(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	f.kill(t, "a", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"b": "active"}, "caddy-b")
	f.waitOwnerOnLAN(t, "b")
	c, err := f.lab.Client.DialTimeout("tcp", net.JoinHostPort(netlab.VIPA.String(), fmt.Sprint(netlab.Port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("greeting through b: %v", err)
	}
	return c, r
}

func (f *takeoverFleet) restart(t *testing.T, name string) {
	t.Helper()
	n := f.configs[name]
	f.nodes[name] = startLabCaddy(t, n.Host, n.Caddyfile())
}

// TestLabTakeoverOnKill: SIGKILL of the owner, then of the first backup;
// the next in rank takes the VIPA over each time, announces it (the
// client's neighbour entry follows at once) and routes new connections.
func TestLabTakeoverOnKill(t *testing.T) {
	f := startTakeoverFleet(t, nil)
	before := clientNeigh(t, f.lab)

	killed := time.Now()
	f.kill(t, "a", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"b": "active", "c": "backup"}, "caddy-b")
	f.waitOwnerOnLAN(t, "b")
	t.Logf("b took over %s after a's SIGKILL (client entry %s → %s)", time.Since(killed).Round(time.Millisecond), before, clientNeigh(t, f.lab))

	killed = time.Now()
	f.kill(t, "b", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"c": "active"}, "caddy-c")
	f.waitOwnerOnLAN(t, "c")
	t.Logf("c took over %s after b's SIGKILL", time.Since(killed).Round(time.Millisecond))
}

// TestLabTakeoverOnStop: a graceful stop hands over at once and removes
// the stopped node's address.
func TestLabTakeoverOnStop(t *testing.T) {
	f := startTakeoverFleet(t, nil)
	stopped := time.Now()
	f.kill(t, "a", syscall.SIGTERM)
	f.waitStatus(t, map[string]string{"b": "active", "c": "backup"}, "caddy-b")
	f.waitOwnerOnLAN(t, "b")
	t.Logf("b took over %s after a's SIGTERM", time.Since(stopped).Round(time.Millisecond))
	if f.lab.Node("a").Holds(netlab.VIPAPrefix()) {
		t.Fatal("the stopped node left the VIPA on its interface")
	}
}

// TestLabTakebackImmediate: the configured owner returns and takes the
// VIPA back at once.
func TestLabTakebackImmediate(t *testing.T) {
	f := startTakeoverFleet(t, func(n *netlab.Node) { n.Takeback = "immediate" })
	f.kill(t, "a", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"b": "active"}, "caddy-b")
	f.waitOwnerOnLAN(t, "b")
	f.restart(t, "a")
	f.waitStatus(t, map[string]string{"a": "active", "b": "backup", "c": "backup"}, "caddy-a")
	f.waitOwnerOnLAN(t, "a")
}

// TestLabTakebackWhenIdle: the backup keeps the VIPA while a connection
// through it is open, which goes on working; once it ends, the configured
// owner takes the VIPA back.
func TestLabTakebackWhenIdle(t *testing.T) {
	f := startTakeoverFleet(t, nil)
	c, r := f.holdThroughBackup(t)

	// a returns after the fleet has seen it fail (a new member to serf;
	// TestLabTakebackWhenIdleQuickReturn: before, the same member).
	waitFor(t, 30*time.Second, "b's serf to see a failed", func() bool {
		var rows []memberRow
		if err := harness.GetJSON(f.nodes["b"].client, labAdmin, "/vipa/members", &rows); err != nil {
			return false
		}
		for _, m := range rows {
			if m.Name == "caddy-a" {
				return m.Status == "failed"
			}
		}
		return true
	})
	f.restart(t, "a")
	waitLabFleet(t, []*labNode{f.nodes["a"], f.nodes["b"], f.nodes["c"]})
	time.Sleep(2 * time.Second) // long enough for an immediate takeback to have happened
	if r, err := f.vipadyn("b"); err != nil || r.Owner != "caddy-b" {
		t.Fatalf("with a connection open through b, b's row is %+v (%v); want b still the owner", r, err)
	}
	if !f.lab.Node("b").Holds(netlab.VIPAPrefix()) {
		t.Fatal("b gave the VIPA up with a connection open through it")
	}
	// The killed a left its address behind; back as a non-owner, it
	// removes it, so only b answers for the VIPA on the LAN.
	waitFor(t, 10*time.Second, "the restarted a to remove the address its killed process left", func() bool {
		return !f.lab.Node("a").Holds(netlab.VIPAPrefix())
	})
	echo(t, c, r, "still here")

	c.Close()
	f.waitStatus(t, map[string]string{"a": "active", "b": "backup", "c": "backup"}, "caddy-a")
	f.waitOwnerOnLAN(t, "a")
}
