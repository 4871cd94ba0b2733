//go:build linux

package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// bufioConn is a client connection with its reader.
type bufioConn struct {
	c *net.TCPConn
	r *bufio.Reader
}

// post sends a JSON body to an admin route and returns the status and body.
func post(t *testing.T, admin, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+admin+path, "application/json", strings.NewReader(body))
	return answer(t, resp, err)
}

// get fetches an admin route and returns the status and body.
func get(t *testing.T, admin, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	return answer(t, resp, err)
}

// answer reads an admin route's response: its status and body.
func answer(t *testing.T, resp *http.Response, err error) (int, []byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// quiesce posts to /vipa/quiesce or /vipa/resume and returns the rows.
func quiesce(t *testing.T, admin, route, body string) []dptRow {
	t.Helper()
	code, out := post(t, admin, "/vipa/"+route, body)
	if code != http.StatusOK {
		t.Fatalf("POST /vipa/%s %s: %d %s", route, body, code, out)
	}
	var rows []dptRow
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("POST /vipa/%s: %v: %s", route, err, out)
	}
	return rows
}

// stateOf is node's row state in admin's /vipa/dpt, "" without a row.
func stateOf(t *testing.T, admin, node string) string {
	for _, r := range dpt(t, admin) {
		if r.Node == node {
			return r.State
		}
	}
	return ""
}

// spread opens n connections through the VIPA one after the other and
// counts them by the application that served them.
func spread(t *testing.T, vipa string, n int) map[string]int {
	t.Helper()
	served := map[string]int{}
	for range n {
		c, _, name := dialVIPA(t, vipa)
		served[name]++
		c.Close()
	}
	return served
}

// TestQuiesce drains targets of a 3-node fleet with the real binary: a
// target quiesces itself, the routing node drains another, open
// connections keep working, new ones go elsewhere, both survive a reload
// and resume restores them.
func TestQuiesce(t *testing.T) {
	f := startThreeNodes(t)
	port, vipa := f.port, f.vipa
	a, b, c := f.nodes[0], f.nodes[1], f.nodes[2]
	pa, pb := f.procs[0], f.procs[1]
	for _, n := range []fleetNode{a, b, c} {
		startApp(t, n.name, reusePortListen(t, fmt.Sprintf("%s:%d", n.ip, port)))
	}
	waitFor(t, 15*time.Second, "three DPT rows", func() bool {
		d := dptNodes(t, a.admin)
		return len(d) == 3 && d["caddy-a"] == 1 && d["caddy-b"] == 1 && d["caddy-c"] == 1
	})

	// A connection to caddy-b stays open through what follows.
	var open *bufioConn
	for range 3 {
		conn, r, name := dialVIPA(t, vipa)
		if name == "caddy-b" {
			open = &bufioConn{conn, r}
			break
		}
		conn.Close()
	}
	if open == nil {
		t.Fatal("round robin did not reach caddy-b in three connections")
	}
	defer open.c.Close()

	// caddy-b quiesces itself: its report says so, the routing node's row
	// follows within the report latency.
	rows := quiesce(t, b.admin, "quiesce", `{}`)
	if len(rows) != 1 || rows[0].Node != "caddy-b" || rows[0].State != "quiesced" || rows[0].Port != port {
		t.Fatalf("quiesce on caddy-b answered %+v", rows)
	}
	start := time.Now()
	waitFor(t, 5*time.Second, "caddy-b quiesced on the routing node", func() bool {
		return stateOf(t, a.admin, "caddy-b") == "quiesced"
	})
	t.Logf("caddy-b quiesced on the routing node after %v", time.Since(start))
	echo(t, open.c, open.r, "still there")
	if got := spread(t, vipa, 12); got["caddy-b"] != 0 || got["caddy-a"] != 6 || got["caddy-c"] != 6 {
		t.Fatalf("12 connections with caddy-b quiesced: %v", got)
	}
	metrics := getText(t, b.admin, "/metrics")
	if want := fmt.Sprintf(`caddy_vipa_report_state{port="%d",state="quiesced",vipa="127.0.0.100"} 1`, port); !strings.Contains(metrics, want) {
		t.Errorf("caddy-b's metrics lack %s", want)
	}

	// A reload of caddy-b keeps its quiesce.
	pb.reload(strings.Replace(b.caddyfile(), "interval 50ms", "interval 60ms", 1))
	if got := stateOf(t, b.admin, "caddy-b"); got != "quiesced" {
		t.Fatalf("caddy-b's own row after a reload: %q", got)
	}
	time.Sleep(500 * time.Millisecond) // a republished report would have arrived
	if got := stateOf(t, a.admin, "caddy-b"); got != "quiesced" {
		t.Fatalf("caddy-b on the routing node after caddy-b's reload: %q", got)
	}

	// The routing node drains caddy-c from the centre.
	rows = quiesce(t, a.admin, "quiesce", `{"node": "caddy-c", "vipa": "127.0.0.100"}`)
	if len(rows) != 1 || rows[0].Node != "caddy-c" || rows[0].State != "quiesced" {
		t.Fatalf("drain of caddy-c answered %+v", rows)
	}
	if got := spread(t, vipa, 6); got["caddy-a"] != 6 {
		t.Fatalf("6 connections with caddy-b and caddy-c quiesced: %v", got)
	}
	// A reload of the routing node keeps its drain and the CRT.
	pa.reload(strings.Replace(a.caddyfile(), "interval 50ms", "interval 60ms", 1))
	if got := stateOf(t, a.admin, "caddy-c"); got != "quiesced" {
		t.Fatalf("caddy-c after the routing node's reload: %q", got)
	}
	if got := spread(t, vipa, 3); got["caddy-a"] != 3 {
		t.Fatalf("3 connections after the reload: %v", got)
	}
	echo(t, open.c, open.r, "after reloads")

	// Unknown names are 404, bad bodies 400, with the reason.
	for _, tc := range []struct {
		admin, route, body string
		code               int
		msg                string
	}{
		{a.admin, "quiesce", `{"node": "caddy-z"}`, 404, "not a fleet member"},
		{a.admin, "quiesce", `{"node": "caddy-c", "vipa": "127.0.0.199"}`, 404, "127.0.0.199"},
		{b.admin, "quiesce", fmt.Sprintf(`{"port": %d}`, port+1), 404, "port"},
		{b.admin, "quiesce", `{"node": "caddy-c"}`, 404, "routes no VIPA"},
		{b.admin, "resume", `{"port": 0}`, 400, "want 1-65535"},
		{b.admin, "resume", `{"vipa": 5}`, 400, "body"},
		{b.admin, "resume", `{"nodes": "x"}`, 400, "unknown field"},
	} {
		code, out := post(t, tc.admin, "/vipa/"+tc.route, tc.body)
		if code != tc.code || !bytes.Contains(out, []byte(tc.msg)) {
			t.Errorf("POST /vipa/%s %s: %d %s, want %d with %q", tc.route, tc.body, code, out, tc.code, tc.msg)
		}
	}
	if resp, err := http.Get("http://" + a.admin + "/vipa/quiesce"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /vipa/quiesce: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Resume restores both.
	rows = quiesce(t, b.admin, "resume", fmt.Sprintf(`{"vipa": "127.0.0.100", "port": %d}`, port))
	if len(rows) != 1 || rows[0].State != "active" {
		t.Fatalf("resume on caddy-b answered %+v", rows)
	}
	rows = quiesce(t, a.admin, "resume", `{"node": "caddy-c"}`)
	if len(rows) != 1 || rows[0].State != "active" {
		t.Fatalf("resume of caddy-c answered %+v", rows)
	}
	waitFor(t, 5*time.Second, "caddy-b active on the routing node", func() bool {
		return stateOf(t, a.admin, "caddy-b") == "active"
	})
	if got := spread(t, vipa, 9); got["caddy-a"] != 3 || got["caddy-b"] != 3 || got["caddy-c"] != 3 {
		t.Fatalf("9 connections after resume: %v", got)
	}
	echo(t, open.c, open.r, "after resume")

	// A quiesce does not last across a restart (nor does SD's VARY): caddy-b
	// quiesces itself, stops and starts again, and its row is active.
	quiesce(t, b.admin, "quiesce", `{}`)
	waitFor(t, 5*time.Second, "caddy-b quiesced again", func() bool { return stateOf(t, a.admin, "caddy-b") == "quiesced" })
	pb.stop()
	waitFor(t, 10*time.Second, "caddy-b's row gone", func() bool { return stateOf(t, a.admin, "caddy-b") == "" })
	startCaddy(t, b.admin, b.caddyfile())
	waitFor(t, 15*time.Second, "caddy-b back, active", func() bool { return stateOf(t, a.admin, "caddy-b") == "active" })
	waitFor(t, 5*time.Second, "caddy-b's own row active", func() bool {
		own := stateOf(t, b.admin, "caddy-b")
		if own == "quiesced" {
			t.Fatal("caddy-b's own row quiesced after its restart")
		}
		return own == "active"
	})
}

// TestQuiesceAffinity: a client's timed affinity does not take it to a
// quiesced target; its open connection there continues.
func TestQuiesceAffinity(t *testing.T) {
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)

	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = strings.Replace(routingBlock(port), "destip all", "destip all {\n\t\t\ttimedaffinity 60s\n\t\t}", 1)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, fmt.Sprintf("127.0.0.1:%d", gossip))
	startCaddy(t, a.admin, a.caddyfile())
	startCaddy(t, b.admin, b.caddyfile())
	admins := map[string]string{"caddy-a": a.admin, "caddy-b": b.admin}
	for _, n := range []fleetNode{a, b} {
		startApp(t, n.name, reusePortListen(t, fmt.Sprintf("%s:%d", n.ip, port)))
	}
	waitFor(t, 15*time.Second, "two DPT rows", func() bool { return len(dptNodes(t, a.admin)) == 2 })

	conn, r, first := dialVIPA(t, vipa)
	defer conn.Close()
	// The metric counts the affinity at once, not at the next sweep.
	if n := metricValue(t, "\n"+getText(t, a.admin, "/metrics"), "\ncaddy_vipa_affinities"); n != 1 {
		t.Errorf("caddy_vipa_affinities %d right after the first connection, want 1", n)
	}
	if got := spread(t, vipa, 4); got[first] != 4 {
		t.Fatalf("4 connections with an affinity to %s: %v", first, got)
	}
	other := "caddy-a"
	if first == other {
		other = "caddy-b"
	}
	// /vipa/affinity and /vipa/dpt filter by their query, as /vipa/crt does.
	for query, want := range map[string]int{
		"": 1, "?node=" + first: 1, "?node=" + other: 0, "?client=127.0.0.1": 1, "?client=127.0.0.9": 0,
		fmt.Sprintf("?vipa=127.0.0.100&port=%d", port): 1, fmt.Sprintf("?port=%d", port+1): 0,
	} {
		var rows []struct{ Client, Node string }
		getJSON(t, a.admin, "/vipa/affinity"+query, &rows)
		if len(rows) != want || want == 1 && (rows[0].Client != "127.0.0.1" || rows[0].Node != first) {
			t.Errorf("/vipa/affinity%s: %+v, want %d row(s)", query, rows, want)
		}
	}
	if _, rows := vipaTable(t, "affinity", "--address", a.admin, "--node", other); len(rows) != 0 {
		t.Errorf("caddy vipa affinity --node %s: %v", other, rows)
	}
	var rows []dptRow
	if getJSON(t, a.admin, "/vipa/dpt?node="+other, &rows); len(rows) != 1 || rows[0].Node != other {
		t.Errorf("/vipa/dpt?node=%s: %+v", other, rows)
	}
	if code, out := get(t, a.admin, "/vipa/affinity?client=nobody"); code != http.StatusBadRequest || !bytes.Contains(out, []byte("client")) {
		t.Errorf("/vipa/affinity?client=nobody: %d %s, want 400", code, out)
	}
	// The target the client is affine to quiesces itself.
	quiesce(t, admins[first], "quiesce", `{}`)
	waitFor(t, 5*time.Second, first+" quiesced on the routing node", func() bool {
		return stateOf(t, a.admin, first) == "quiesced"
	})
	if got := spread(t, vipa, 4); got[first] != 0 {
		t.Fatalf("4 connections after %s quiesced: %v", first, got)
	}
	echo(t, conn, r, "still there")
}
