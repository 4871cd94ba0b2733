//go:build linux

package tests

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// TestLabTakeoverKeepsPolicy: a backup that takes the VIPA over routes it
// by the owner's whole policy, which the definition carries to it: b's
// weight 3 against c's 1 stays 3:1 on b, and d, which quiesced itself,
// gets no new connection there either.
func TestLabTakeoverKeepsPolicy(t *testing.T) {
	f := startTakeoverFleetOf(t, []string{"d"}, func(n *netlab.Node) {
		n.Distribute = []string{"destip caddy-a", "destip caddy-b weight 3", "destip caddy-c", "destip caddy-d"}
	})
	d := f.nodes["d"]
	d.post(t, "/vipa/quiesce", "{}")
	waitFor(t, 20*time.Second, "a's DPT: four rows, b weighing 3, d quiesced", func() bool {
		rows := f.nodes["a"].dptByNode()
		return len(rows) == 4 && rows["caddy-b"].Weight == 3 && rows["caddy-d"].State == "quiesced"
	})
	time.Sleep(time.Second) // the backups' reports and definitions settle

	f.kill(t, "a", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"b": "active", "c": "backup"}, "caddy-b")
	f.waitOwnerOnLAN(t, "b")
	// /vipa/dpt shows the routed rows once b's view of the definitions
	// names it the owner, a moment after it routes.
	var rows map[string]dptRow
	waitFor(t, 10*time.Second, "b's DPT: b weighing 3, c 1, d quiesced", func() bool {
		rows = f.nodes["b"].dptByNode()
		return len(rows) == 3 && rows["caddy-b"].Weight == 3 && rows["caddy-c"].Weight == 1 && rows["caddy-d"].State == "quiesced"
	})
	served := map[string]int{}
	for range 40 {
		name, err := clientGreeting(f.lab, 5*time.Second)
		if err != nil {
			t.Fatalf("client through the VIPA on b: %v", err)
		}
		served[name]++
	}
	// Smooth weighted round robin: every 4 picks are b, b, c, b in some
	// order, so 40 give 30 and 10 (±1 where the count starts mid-cycle).
	if served["caddy-d"] != 0 || served["caddy-b"] < 29 || served["caddy-b"] > 31 || served["caddy-b"]+served["caddy-c"] != 40 {
		t.Fatalf("40 connections through b went %v; want 30:10 to b and c, none to the quiesced d", served)
	}
	t.Logf("after the takeover: %v; b's rows %+v", served, rows)
}

// TestLabTakeoverCarriesDrainAndHealth: what the routing node decided on
// its own reaches its backups, so the first connections after a takeover
// find it. a drains c from the centre (quiesce with node) and finds d dead
// (its port drops every SYN while its listener stays: the row stays in the
// DPT); b, its first backup, shows both on its warm rows before a dies,
// and after a is killed routes nothing to c and never dials d: no client
// pays d's dial timeout again (b's dial failures stay 0; b only probes d).
func TestLabTakeoverCarriesDrainAndHealth(t *testing.T) {
	f := startTakeoverFleetOf(t, []string{"d"}, nil)
	dialFailures := func(name string) string {
		body, err := harness.Get(f.nodes[name].client, labAdmin, "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, "caddy_vipa_dial_failures_total ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "caddy_vipa_dial_failures_total "))
			}
		}
		return "none"
	}
	waitFor(t, 20*time.Second, "a's DPT: four rows", func() bool { return len(f.nodes["a"].dptByNode()) == 4 })
	f.nodes["a"].post(t, "/vipa/quiesce", `{"node": "caddy-c"}`)

	// d drops every SYN to the distributed port; its listener stays, so
	// its row does. Clients through a find it dead: the first one routed
	// there waits for the dial timeout and goes on to another row.
	cmd := f.lab.Node("d").Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("table inet vipawarm {\n\tchain in {\n\t\ttype filter hook input priority 0;\n\t\ttcp dport %d drop\n\t}\n}\n", netlab.Port))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("nft in caddy-d's namespace: %v: %s (.ci/run installs nft)", err, out)
	}
	waitFor(t, 60*time.Second, "a to find d unhealthy", func() bool {
		if f.nodes["a"].dptByNode()["caddy-d"].Health == "unhealthy" {
			return true
		}
		_, _ = clientGreeting(f.lab, 10*time.Second)
		return false
	})
	var rows map[string]dptRow
	waitFor(t, 20*time.Second, "b's warm rows: c drained, d unhealthy, as on a", func() bool {
		rows = f.nodes["b"].dptByNode()
		return rows["caddy-c"].State == "quiesced" && rows["caddy-d"].Health == "unhealthy" && rows["caddy-d"].TSR < 100 &&
			rows["caddy-b"].State == "active" && rows["caddy-b"].Health == "healthy"
	})
	if n := dialFailures("b"); n != "0" {
		t.Fatalf("b dialed before it routed: dial failures %s", n)
	}

	f.kill(t, "a", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"b": "active", "c": "backup"}, "caddy-b")
	f.waitOwnerOnLAN(t, "b")
	waitFor(t, 10*time.Second, "b routes: c drained, d unhealthy", func() bool {
		rows = f.nodes["b"].dptByNode()
		return len(rows) == 3 && rows["caddy-c"].State == "quiesced" && rows["caddy-d"].Health == "unhealthy"
	})
	served := map[string]int{}
	for range 20 {
		name, err := clientGreeting(f.lab, 10*time.Second)
		if err != nil {
			t.Fatalf("client through the VIPA on b: %v", err)
		}
		served[name]++
	}
	if served["caddy-b"] != 20 {
		t.Fatalf("20 connections through b went %v; want all to b: c is drained, d unhealthy", served)
	}
	if n := dialFailures("b"); n != "0" {
		t.Fatalf("clients through b paid dials of d: dial failures %s", n)
	}
	// b owns the drain now: a resume here lifts it.
	f.nodes["b"].post(t, "/vipa/resume", `{"node": "caddy-c"}`)
	waitFor(t, 10*time.Second, "c resumed on b", func() bool { return f.nodes["b"].dptByNode()["caddy-c"].State == "active" })
	t.Logf("after the takeover: %v; b's rows %+v", served, rows)
}
