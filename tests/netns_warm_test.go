//go:build linux

package tests

import (
	"bytes"
	"io"
	"net/http"
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
	post := func(n *labNode, path, body string) {
		t.Helper()
		resp, err := n.client.Post("http://"+labAdmin+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s on %s: %d %s", path, n.host.Name, resp.StatusCode, out)
		}
	}
	post(d, "/vipa/quiesce", "{}")
	rowsOn := func(name string) map[string]dptRow {
		var rows []dptRow
		if err := harness.GetJSON(f.nodes[name].client, labAdmin, "/vipa/dpt", &rows); err != nil {
			return nil
		}
		out := map[string]dptRow{}
		for _, r := range rows {
			out[r.Node] = r
		}
		return out
	}
	waitFor(t, 20*time.Second, "a's DPT: four rows, b weighing 3, d quiesced", func() bool {
		rows := rowsOn("a")
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
		rows = rowsOn("b")
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
