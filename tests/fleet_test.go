//go:build linux

package tests

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// fleetNode describes one Caddy of a test fleet.
type fleetNode struct {
	name, ip string
	admin    string
	gossip   int
	join     []string
	key      string
	routes   string // vipadistribute statements and the layer4 block, for the routing node
}

func (n fleetNode) caddyfile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tvipadynamic {\n\t\tnode %s\n\t\tadvertise %s\n", n.admin, n.name, n.ip)
	fmt.Fprintf(&b, "\t\tgossip %s:%d {\n\t\t\tprofile fast\n", n.ip, n.gossip)
	if len(n.join) > 0 {
		fmt.Fprintf(&b, "\t\t\tjoin %s\n", strings.Join(n.join, " "))
	}
	if n.key != "" {
		fmt.Fprintf(&b, "\t\t\tencrypt_key %s\n", n.key)
	}
	b.WriteString("\t\t}\n\t\tlisteners auto {\n\t\t\tinterval 50ms\n\t\t}\n")
	b.WriteString(n.routes)
	b.WriteString("\n}\n")
	return b.String()
}

const fleetKey = "3k7VBm6mYxT6kzF8xj0s0m9cRSuqkC3QfWzE4u8i5Bw="

// routingBlock closes the vipadynamic block with a definition and adds the
// layer4 server for the VIPA.
func routingBlock(port int) string {
	return fmt.Sprintf(`		vipadistribute define 127.0.0.100 port %d destip all
	}
	layer4 {
		127.0.0.100:%d {
			route {
				distribute
			}
		}
	}`, port, port)
}

func newFleetNode(t *testing.T, name, ip string, gossip int, join ...string) fleetNode {
	return fleetNode{name: name, ip: ip, admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)), gossip: gossip, join: join, key: fleetKey, routes: "\t}"}
}

type memberRow = harness.MemberRow

func members(t *testing.T, admin string) map[string]string {
	var rows []memberRow
	getJSON(t, admin, "/vipa/members", &rows)
	out := make(map[string]string)
	for _, r := range rows {
		out[r.Name] = r.Status
	}
	return out
}

type definitionRow = harness.DefinitionRow

func dptNodes(t *testing.T, admin string) map[string]int {
	out := make(map[string]int)
	for _, r := range dpt(t, admin) {
		out[r.Node] = r.Ready
	}
	return out
}

// threeNodes is the fleet of TestFleet and TestQuiesce: caddy-a routes
// vipa (127.0.0.100:port), caddy-b and caddy-c join it; all three run.
type threeNodes struct {
	port   int
	gossip int // every node's gossip port
	vipa   string
	nodes  [3]fleetNode // caddy-a, caddy-b, caddy-c
	procs  [3]*caddyProc
}

func startThreeNodes(t *testing.T) threeNodes {
	t.Helper()
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	seed := fmt.Sprintf("127.0.0.1:%d", gossip)

	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = routingBlock(port)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, seed)
	c := newFleetNode(t, "caddy-c", "127.0.0.3", gossip, seed)
	f := threeNodes{port: port, gossip: gossip, vipa: vipa, nodes: [3]fleetNode{a, b, c}}
	for i, n := range f.nodes {
		f.procs[i] = startCaddy(t, n.admin, n.caddyfile())
	}
	return f
}

// TestFleet runs three real Caddy processes with real applications.
func TestFleet(t *testing.T) {
	f := startThreeNodes(t)
	port, gossip, vipa := f.port, f.gossip, f.vipa
	a, b, c := f.nodes[0], f.nodes[1], f.nodes[2]
	pa, pc := f.procs[0], f.procs[2]

	waitFor(t, 10*time.Second, "three alive members", func() bool {
		m := members(t, a.admin)
		return len(m) == 3 && m["caddy-a"] == "alive" && m["caddy-b"] == "alive" && m["caddy-c"] == "alive"
	})

	// Every node learns the definition and its routing node.
	for _, n := range []fleetNode{a, b, c} {
		waitFor(t, 5*time.Second, n.name+" to learn the definition", func() bool {
			var defs []definitionRow
			getJSON(t, n.admin, "/vipa/definitions", &defs)
			return len(defs) == 1 && defs[0].VIPA == "127.0.0.100" && defs[0].RoutingNode == "caddy-a" &&
				len(defs[0].Ports) == 1 && defs[0].Ports[0] == port && defs[0].Conflict == ""
		})
	}

	apps := map[string]*app{}
	for _, n := range []fleetNode{a, b, c} {
		apps[n.name] = startApp(t, n.name, reusePortListen(t, fmt.Sprintf("%s:%d", n.ip, port)))
	}
	waitFor(t, 5*time.Second, "three DPT rows", func() bool {
		d := dptNodes(t, a.admin)
		return len(d) == 3 && d["caddy-a"] == 1 && d["caddy-b"] == 1 && d["caddy-c"] == 1
	})
	for _, r := range dpt(t, a.admin) {
		want := map[string]string{"caddy-a": "127.0.0.1", "caddy-b": "127.0.0.2", "caddy-c": "127.0.0.3"}[r.Node]
		if r.Address != fmt.Sprintf("%s:%d", want, port) {
			t.Fatalf("row %+v: address is not the node's advertise address", r)
		}
	}

	// Round robin spreads 30 connections evenly.
	served := map[string]int{}
	for range 30 {
		conn, _, name := dialVIPA(t, vipa)
		served[name]++
		conn.Close()
	}
	if served["caddy-a"] != 10 || served["caddy-b"] != 10 || served["caddy-c"] != 10 {
		t.Fatalf("30 connections spread %v, want 10 each", served)
	}

	// An application stops: its row goes and no new connection goes there.
	apps["caddy-b"].stopListening()
	waitFor(t, 3*time.Second, "caddy-b's row to go", func() bool {
		d := dptNodes(t, a.admin)
		_, ok := d["caddy-b"]
		return !ok && len(d) == 2
	})
	for range 10 {
		conn, _, name := dialVIPA(t, vipa)
		conn.Close()
		if name == "caddy-b" {
			t.Fatal("a connection went to caddy-b after its application stopped")
		}
	}

	// SIGKILL a node: its rows go after failure detection.
	if err := pc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "caddy-c's row to go after SIGKILL", func() bool {
		_, ok := dptNodes(t, a.admin)["caddy-c"]
		return !ok
	})

	// A late node joins through a non-routing node, learns the definition
	// and becomes a target.
	d := newFleetNode(t, "caddy-d", "127.0.0.4", gossip, fmt.Sprintf("127.0.0.2:%d", gossip))
	startApp(t, "caddy-d", reusePortListen(t, fmt.Sprintf("127.0.0.4:%d", port)))
	pd := startCaddy(t, d.admin, d.caddyfile())
	waitFor(t, 10*time.Second, "caddy-d to become a target", func() bool {
		return dptNodes(t, a.admin)["caddy-d"] == 1
	})
	var defs []definitionRow
	getJSON(t, d.admin, "/vipa/definitions", &defs)
	if len(defs) != 1 || defs[0].RoutingNode != "caddy-a" {
		t.Fatalf("caddy-d's definitions: %+v", defs)
	}

	// A node with a wrong key is not admitted.
	e := newFleetNode(t, "caddy-e", "127.0.0.5", gossip, fmt.Sprintf("127.0.0.1:%d", gossip))
	e.key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	startCaddy(t, e.admin, e.caddyfile())
	time.Sleep(2 * time.Second)
	if _, ok := members(t, a.admin)["caddy-e"]; ok {
		t.Fatal("a node with a wrong key joined the fleet")
	}
	if m := members(t, e.admin); len(m) != 1 {
		t.Fatalf("the wrong-key node sees %v", m)
	}

	// Graceful stop leaves the fleet: the rows go within a second, long
	// before failure detection.
	stopped := time.Now()
	if err := pd.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "caddy-d's row to go after a graceful stop", func() bool {
		_, ok := dptNodes(t, a.admin)["caddy-d"]
		return !ok
	})
	if took := time.Since(stopped); took > time.Second {
		t.Fatalf("rows of a gracefully stopped node went after %s", took)
	}
	// serf shows it leaving, then left, never failed.
	waitFor(t, 5*time.Second, "caddy-d to be left", func() bool {
		st := members(t, pa.admin)["caddy-d"]
		if st == "failed" {
			t.Fatal("a gracefully stopped node was declared failed")
		}
		return st == "left"
	})
}

// TestFleetConflict defines one VIPA on two nodes: both log the conflict
// and show it, and the DPT is built by the deterministic owner only.
func TestFleetConflict(t *testing.T) {
	port := freePort(t)
	gossip := freePort(t)
	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = routingBlock(port)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, fmt.Sprintf("127.0.0.1:%d", gossip))
	b.routes = fmt.Sprintf("\t\tvipadistribute define 127.0.0.100 port %d destip all\n\t}", port)
	pa := startCaddy(t, a.admin, a.caddyfile())
	pb := startCaddy(t, b.admin, b.caddyfile())
	startApp(t, "caddy-a", reusePortListen(t, fmt.Sprintf("127.0.0.1:%d", port)))
	startApp(t, "caddy-b", reusePortListen(t, fmt.Sprintf("127.0.0.2:%d", port)))

	for _, n := range []fleetNode{a, b} {
		waitFor(t, 10*time.Second, n.name+" to show the conflict", func() bool {
			var defs []definitionRow
			getJSON(t, n.admin, "/vipa/definitions", &defs)
			if len(defs) != 2 {
				return false
			}
			for _, d := range defs {
				if d.VIPA != "127.0.0.100" || !strings.Contains(d.Conflict, "also defined by") {
					return false
				}
			}
			return true
		})
	}
	for _, p := range []*caddyProc{pa, pb} {
		waitFor(t, 5*time.Second, "the conflict in the log", func() bool {
			return contains(p.log.String(), "VIPA defined by more than one node")
		})
	}
	// caddy-a owns the VIPA (defined first): both applications are targets in
	// its DPT. caddy-b builds none: its /vipa/dpt shows only its own report,
	// as on any node that is only a target of the VIPA.
	waitFor(t, 5*time.Second, "both rows on the owner", func() bool {
		n := dptNodes(t, a.admin)
		return n["caddy-a"] == 1 && n["caddy-b"] == 1
	})
	if rows := dpt(t, b.admin); len(rows) != 1 || rows[0].Node != "caddy-b" || rows[0].Address != fmt.Sprintf("127.0.0.2:%d", port) {
		t.Fatalf("the conflict loser shows %+v, want only its own report row", rows)
	}
	// The per-row metrics show the rows /vipa/dpt shows, with their role:
	// caddy-a routes both rows, caddy-b shows its own report as a target.
	for _, tc := range []struct {
		n    fleetNode
		want []string
	}{
		{a, []string{"127.0.0.100 caddy-a routing", "127.0.0.100 caddy-b routing"}},
		{b, []string{"127.0.0.100 caddy-b target"}},
	} {
		var view []string
		for _, r := range dpt(t, tc.n.admin) {
			view = append(view, r.VIPA+" "+r.Node)
		}
		slices.Sort(view)
		got := readyRows(t, tc.n.admin)
		var rows []string
		for _, g := range got {
			rows = append(rows, g[:strings.LastIndexByte(g, ' ')])
		}
		if !slices.Equal(got, tc.want) || !slices.Equal(rows, view) {
			t.Errorf("%s: caddy_vipa_dpt_ready rows %q, want %q (/vipa/dpt %q)", tc.n.name, got, tc.want, view)
		}
	}
}

// readyRows lists a node's caddy_vipa_dpt_ready series as "vipa node
// role", sorted.
func readyRows(t *testing.T, admin string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(getText(t, admin, "/metrics"), "\n") {
		rest, ok := strings.CutPrefix(line, "caddy_vipa_dpt_ready{")
		if !ok {
			continue
		}
		l := map[string]string{}
		for _, kv := range strings.Split(rest[:strings.IndexByte(rest, '}')], ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(v, `"`)
		}
		out = append(out, l["vipa"]+" "+l["node"]+" "+l["role"])
	}
	slices.Sort(out)
	return out
}

// TestDPTViewPerVIPA: caddy-a routes 127.0.0.100 and caddy-b routes
// 127.0.0.101, each a target of the other's VIPA. Each node's /vipa/dpt
// shows, per VIPA, the DPT where it routes it (both targets' rows) and its
// own report row where it is only a target.
func TestDPTViewPerVIPA(t *testing.T) {
	port := freePort(t)
	gossip := freePort(t)
	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = fmt.Sprintf("\t\tvipadistribute define 127.0.0.100 port %d destip all\n\t}", port)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, fmt.Sprintf("127.0.0.1:%d", gossip))
	b.routes = fmt.Sprintf("\t\tvipadistribute define 127.0.0.101 port %d destip all\n\t}", port)
	startCaddy(t, a.admin, a.caddyfile())
	startCaddy(t, b.admin, b.caddyfile())
	startApp(t, "caddy-a", reusePortListen(t, fmt.Sprintf("127.0.0.1:%d", port)))
	startApp(t, "caddy-b", reusePortListen(t, fmt.Sprintf("127.0.0.2:%d", port)))

	view := func(admin string) []string {
		var out []string
		for _, r := range dpt(t, admin) {
			out = append(out, fmt.Sprintf("%s %s %s", r.VIPA, r.Node, r.Address))
		}
		slices.Sort(out)
		return out
	}
	a1, a2 := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.2:%d", port)
	for _, tc := range []struct {
		n    fleetNode
		want []string
	}{
		{a, []string{"127.0.0.100 caddy-a " + a1, "127.0.0.100 caddy-b " + a2, "127.0.0.101 caddy-a " + a1}},
		{b, []string{"127.0.0.100 caddy-b " + a2, "127.0.0.101 caddy-a " + a1, "127.0.0.101 caddy-b " + a2}},
	} {
		waitFor(t, 15*time.Second, fmt.Sprintf("%s's DPT view %q", tc.n.name, tc.want), func() bool {
			return slices.Equal(view(tc.n.admin), tc.want)
		})
	}
}
