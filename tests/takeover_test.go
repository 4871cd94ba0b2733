//go:build linux

package tests

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// vipadynRow is one row of GET /vipa/vipadyn.
type vipadynRow struct {
	VIPA   string `json:"vipa"`
	Status string `json:"status"`
	Rank   int    `json:"rank"`
	Owner  string `json:"owner"`
	Since  string `json:"since"`
}

func vipadyn(t *testing.T, admin, v string) vipadynRow {
	var rows []vipadynRow
	getJSON(t, admin, "/vipa/vipadyn", &rows)
	for _, r := range rows {
		if r.VIPA == v {
			return r
		}
	}
	return vipadynRow{}
}

// TestTakeover on loopback: a routing node and two ranked backups. Every
// node shows the VIPA in /vipa/vipadyn; the backups hold the DPT while the
// routing node routes; SIGKILL hands the VIPA to the first backup, which
// routes from the rows it already held; the routing node's return takes it
// back (takeback immediate); a graceful stop hands it over again.
// Every node listens on the VIPA, as on a LAN: on loopback the three
// processes share VIPA:port (Caddy's listeners set SO_REUSEPORT), so the
// kernel spreads the clients over them and each node routes what it gets,
// owner or not. The address moving is the network namespace tests' part.
func TestTakeover(t *testing.T) {
	const vip = "127.0.0.114"
	port := freePort(t)
	gossip := freePort(t)
	seed := fmt.Sprintf("127.0.0.1:%d", gossip)

	layer4 := fmt.Sprintf(`
	layer4 {
		%s:%d {
			route {
				distribute
			}
		}
	}`, vip, port)
	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip, fmt.Sprintf("127.0.0.2:%d", gossip))
	a.routes = fmt.Sprintf("\t\tvipadistribute define %s port %d destip all\n\t}", vip, port) + layer4
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, seed)
	b.routes = fmt.Sprintf("\t\tvipabackup %s rank 100 {\n\t\t\ttakeback immediate\n\t\t}\n\t}", vip) + layer4
	c := newFleetNode(t, "caddy-c", "127.0.0.3", gossip, seed)
	c.routes = fmt.Sprintf("\t\tvipabackup %s rank 50\n\t}", vip) + layer4
	// through reaches the applications through the VIPA n times, whichever
	// node's listener the kernel gives each client.
	through := func(n int) {
		t.Helper()
		for range n {
			conn, _, _ := dialVIPA(t, fmt.Sprintf("%s:%d", vip, port))
			conn.Close()
		}
	}

	dirA := t.TempDir()
	pa := startCaddyIn(t, dirA, a.admin, a.caddyfile())
	startCaddy(t, b.admin, b.caddyfile())
	startCaddy(t, c.admin, c.caddyfile())
	for _, n := range []fleetNode{a, b, c} {
		startApp(t, n.name, reusePortListen(t, fmt.Sprintf("%s:%d", n.ip, port)))
	}

	want := map[string]vipadynRow{
		"caddy-a": {Status: "active", Rank: 0, Owner: "caddy-a"},
		"caddy-b": {Status: "backup", Rank: 100, Owner: "caddy-a"},
		"caddy-c": {Status: "backup", Rank: 50, Owner: "caddy-a"},
	}
	for _, n := range []fleetNode{a, b, c} {
		waitFor(t, 15*time.Second, n.name+"'s /vipa/vipadyn", func() bool {
			r := vipadyn(t, n.admin, vip)
			w := want[n.name]
			return r.Status == w.Status && r.Rank == w.Rank && r.Owner == w.Owner && r.Since != ""
		})
	}
	if _, err := time.Parse(time.RFC3339, vipadyn(t, a.admin, vip).Since); err != nil {
		t.Fatalf("since: %v", err)
	}
	waitFor(t, 10*time.Second, "the routing node's DPT", func() bool {
		d := dptNodes(t, a.admin)
		return d["caddy-a"] == 1 && d["caddy-b"] == 1 && d["caddy-c"] == 1
	})
	// Warm standby: the backups hold every target's row while they do not
	// route, and show them in /vipa/dpt and in the metrics as role backup.
	for _, bk := range []fleetNode{b, c} {
		for _, n := range []string{"caddy-a", "caddy-b", "caddy-c"} {
			series := fmt.Sprintf(`caddy_vipa_dpt_ready{node=%q,port="%d",role="backup",vipa=%q} 1`, n, port, vip)
			waitFor(t, 10*time.Second, bk.name+"'s standby row of "+n, func() bool {
				return strings.Contains(getText(t, bk.admin, "/metrics"), series)
			})
		}
	}
	through(12)
	for _, bk := range []fleetNode{b, c} {
		if !strings.Contains(getText(t, bk.admin, "/metrics"), `caddy_vipa_refused_connections_total{reason="no_definition"} 0`) {
			t.Fatalf("%s refused a client that reached its listener on the VIPA", bk.name)
		}
		// A backup says what it would do with a connection that reached
		// its listener: a target from the DPT it holds.
		var ans struct {
			Node       string `json:"node"`
			Address    string `json:"address"`
			Candidates []any  `json:"candidates"`
		}
		getJSON(t, bk.admin, fmt.Sprintf("/vipa/route?vipa=%s&port=%d&client=127.0.0.1", vip, port), &ans)
		if ans.Node == "" || ans.Address == "" || len(ans.Candidates) != 3 {
			t.Fatalf("%s's /vipa/route: %+v, want a target of three candidates", bk.name, ans)
		}
		// A VIPA it holds nothing for stays an error.
		if _, err := harness.Get(http.DefaultClient, bk.admin, fmt.Sprintf("/vipa/route?vipa=127.0.0.199&port=%d&client=127.0.0.1", port)); err == nil ||
			!strings.Contains(err.Error(), "no VIPADISTRIBUTE definition") {
			t.Fatalf("%s's /vipa/route for a VIPA it holds nothing for: %v", bk.name, err)
		}
	}

	// A manual move away from the live routing node, and on to the second
	// backup: each holds (the routing node's rank and the move reach the
	// others by gossip after its claim does; neither takes it back).
	for _, mv := range []struct{ on, to fleetNode }{{a, b}, {b, c}, {c, a}} {
		resp, err := http.Post("http://"+mv.on.admin+"/vipa/move", "application/json",
			strings.NewReader(fmt.Sprintf(`{"vipa": %q, "to": %q}`, vip, mv.to.name)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("move on %s to %s: %s", mv.on.name, mv.to.name, resp.Status)
		}
		waitFor(t, 10*time.Second, mv.to.name+" to route after the move", func() bool {
			r := vipadyn(t, mv.to.admin, vip)
			return r.Status == "active" && r.Owner == mv.to.name
		})
		for _, n := range []fleetNode{a, b, c} {
			waitFor(t, 5*time.Second, n.name+" to show the move", func() bool {
				return vipadyn(t, n.admin, vip).Owner == mv.to.name
			})
		}
		held := time.Now()
		for time.Since(held) < 1500*time.Millisecond {
			for _, n := range []fleetNode{a, b, c} {
				if r := vipadyn(t, n.admin, vip); r.Owner != mv.to.name {
					t.Fatalf("%v after the move to %s: %s shows %+v", time.Since(held).Round(time.Millisecond), mv.to.name, n.name, r)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Every node's per-row metrics show its /vipa/dpt rows, by role: the
		// owner's routed rows, the warm rows of a backup that does not
		// define the VIPA, and on caddy-a, which defines it, its own report
		// alone: the warm rows it holds (its /vipa/route answers from all
		// three) would count beside the owner's in a sum over the fleet.
		for _, n := range []fleetNode{a, b, c} {
			role := "backup"
			switch {
			case n.name == mv.to.name:
				role = "routing"
			case n.name == "caddy-a":
				role = "target"
			}
			rows := 3
			if role == "target" {
				rows = 1
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				got, view := readyRows(t, n.admin), []string(nil)
				for _, r := range dpt(t, n.admin) {
					view = append(view, r.VIPA+" "+r.Node+" "+role)
				}
				slices.Sort(view)
				if len(view) == rows && slices.Equal(got, view) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the move to %s: %s's caddy_vipa_dpt_ready rows %q, want its %d /vipa/dpt rows as role %s: %q",
						mv.to.name, n.name, got, rows, role, view)
				}
			}
		}
		var ans struct {
			Candidates []any `json:"candidates"`
		}
		getJSON(t, a.admin, fmt.Sprintf("/vipa/route?vipa=%s&port=%d&client=127.0.0.1", vip, port), &ans)
		if len(ans.Candidates) != 3 {
			t.Fatalf("caddy-a's /vipa/route after the move to %s: %d candidates, want the 3 rows it holds", mv.to.name, len(ans.Candidates))
		}
	}

	// SIGKILL: the first backup takes over and routes from the rows it held.
	start := time.Now()
	if err := pa.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "caddy-b to take over", func() bool {
		r := vipadyn(t, b.admin, vip)
		return r.Status == "active" && r.Owner == "caddy-b"
	})
	t.Logf("SIGKILL: caddy-b active after %v", time.Since(start).Round(time.Millisecond))
	// caddy-b's owner watch took caddy-a as down, typically before serf
	// declares it failed: from the moment caddy-b's own definition shows,
	// caddy-a's is gone from caddy-b's view, never beside it.
	waitFor(t, 20*time.Second, "caddy-b's definitions to name caddy-b alone", func() bool {
		var defs []definitionRow
		getJSON(t, b.admin, "/vipa/definitions", &defs)
		nodes := map[string]bool{}
		for _, d := range defs {
			nodes[d.RoutingNode] = true
		}
		if nodes["caddy-a"] && nodes["caddy-b"] {
			t.Fatalf("caddy-b's definitions show the dead owner's beside its own (serf: caddy-a %s): %+v",
				members(t, b.admin)["caddy-a"], defs)
		}
		return len(defs) == 1 && defs[0].RoutingNode == "caddy-b"
	})
	if d := dptNodes(t, b.admin); d["caddy-b"] != 1 || d["caddy-c"] != 1 {
		t.Fatalf("caddy-b's DPT right after the takeover: %v; want the rows it held", d)
	}
	through(12)
	waitFor(t, 5*time.Second, "caddy-c to follow", func() bool {
		r := vipadyn(t, c.admin, vip)
		return r.Status == "backup" && r.Owner == "caddy-b"
	})
	// The dead node's own definition goes when serf declares it failed,
	// which may come after the backups' faster detection.
	var defs []definitionRow
	waitFor(t, 20*time.Second, "caddy-c's definitions to name caddy-b alone", func() bool {
		defs = nil
		getJSON(t, c.admin, "/vipa/definitions", &defs)
		for _, d := range defs {
			if d.Conflict != "" {
				t.Fatalf("caddy-c's definitions after the takeover: %+v", defs)
			}
		}
		return len(defs) == 1 && defs[0].RoutingNode == "caddy-b"
	})
	if !strings.Contains(getText(t, b.admin, "/metrics"), "caddy_vipa_ownership_changes_total") {
		t.Fatal("no ownership change metric")
	}

	// The routing node returns: takeback immediate gives the VIPA back.
	<-pa.exited
	pa = startCaddyIn(t, dirA, a.admin, a.caddyfile())
	for _, n := range []fleetNode{a, b, c} {
		waitFor(t, 20*time.Second, n.name+" after the takeback", func() bool {
			r := vipadyn(t, n.admin, vip)
			return r.Owner == "caddy-a" && r.Status == want[n.name].Status
		})
	}
	waitFor(t, 10*time.Second, "the returned routing node to route", func() bool {
		d := dptNodes(t, a.admin)
		return d["caddy-a"] == 1 && d["caddy-b"] == 1 && d["caddy-c"] == 1
	})
	through(6)

	// A graceful stop hands over without waiting for failure detection.
	start = time.Now()
	if err := pa.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "caddy-b to take over on a graceful stop", func() bool {
		r := vipadyn(t, b.admin, vip)
		return r.Status == "active" && r.Owner == "caddy-b"
	})
	t.Logf("graceful stop: caddy-b active after %v", time.Since(start).Round(time.Millisecond))
	<-pa.exited
	if !strings.Contains(pa.log.String(), "VIPAs handed over") {
		t.Errorf("the stopping node did not log its hand-over")
	}

	// A manual move, on the owner: to the second backup, now.
	resp, err := http.Post("http://"+c.admin+"/vipa/move", "application/json",
		strings.NewReader(fmt.Sprintf(`{"vipa": %q, "to": "caddy-b"}`, vip)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("a move on a node that does not route the VIPA: %s, want 409", resp.Status)
	}
	resp, err = http.Post("http://"+b.admin+"/vipa/move", "application/json",
		strings.NewReader(fmt.Sprintf(`{"vipa": %q, "to": "caddy-c", "when": "now"}`, vip)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("move: %s", resp.Status)
	}
	for _, n := range []fleetNode{b, c} {
		waitFor(t, 10*time.Second, n.name+" after the move", func() bool {
			return vipadyn(t, n.admin, vip).Owner == "caddy-c"
		})
	}
	if r := vipadyn(t, c.admin, vip); r.Status != "active" {
		t.Fatalf("caddy-c after the move: %+v", r)
	}
}
