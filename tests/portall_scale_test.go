//go:build linux

package tests

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPortAllScale measures port all at scale (VIPA_PORTALL_MEASURE=1;
// figures are logged, goals never asserted): three target nodes each
// listening on 1,000 distinct ports, the time from the listens to all
// 3,000 VIPA ports accepting, the routing node's extra RSS and descriptors
// per dynamic port, and the time for all to close after the applications
// stop.
//
//	VIPA_PORTALL_MEASURE=1 go test -count=1 -v -run TestPortAllScale ./tests/
func TestPortAllScale(t *testing.T) {
	if os.Getenv("VIPA_PORTALL_MEASURE") == "" {
		t.Skip("a measurement: set VIPA_PORTALL_MEASURE=1")
	}
	const perNode = 1000
	n := portAllNet()
	router, vip := n+".1", n+".100"
	targets := []string{n + ".2", n + ".3", n + ".4"}
	all := append([]string{router, vip}, targets...)
	admin := freePortOn(t, all...)
	gossip := freePortOn(t, all...)
	routes := fmt.Sprintf("vipadistribute define %s port all destip all", vip)
	pa := startCaddy(t, fmt.Sprintf("%s:%d", router, admin), portAllNode("router", router, admin, gossip, "", routes))
	seed := fmt.Sprintf("%s:%d", router, gossip)
	for i, ip := range targets {
		a, g := freePortOn(t, all...), freePortOn(t, all...)
		startCaddy(t, fmt.Sprintf("%s:%d", ip, a), portAllNode(fmt.Sprintf("target-%d", i+1), ip, a, g, seed, ""))
	}
	adminAt := fmt.Sprintf("%s:%d", router, admin)
	waitFor(t, 30*time.Second, "four alive members", func() bool {
		m := members(t, adminAt)
		return len(m) == 4
	})
	open := func() int { return metricValue(t, getText(t, adminAt, "/metrics"), "\ncaddy_vipa_dynamic_ports") }
	time.Sleep(2 * time.Second) // settle
	base := open()
	rss0, fds0 := procRSS(t, pa.cmd.Process.Pid), openFDs(t, pa.cmd.Process.Pid)

	// Distinct ports per node: 3,000 VIPA ports.
	var lns []net.Listener
	start := time.Now()
	for _, ip := range targets {
		for k := 0; k < perNode; {
			ln, err := net.Listen("tcp", ip+":0")
			if err != nil {
				t.Fatal(err)
			}
			lns = append(lns, ln)
			k++
		}
	}
	listened := time.Since(start)
	distinct := make(map[int]bool) // nodes may get the same port: one VIPA port for its rows
	for _, ln := range lns {
		distinct[ln.Addr().(*net.TCPAddr).Port] = true
	}
	// A port some other process holds on the wildcard address cannot open
	// on the VIPA either: the routing node counts it refused, and so does
	// this test.
	refused := func() int {
		return metricValue(t, getText(t, adminAt, "/metrics"), "\ncaddy_vipa_dynamic_ports_refused_total{reason=\"listen\"}")
	}
	deadline := time.Now().Add(60 * time.Second)
	for open()-base+refused() < len(distinct) {
		if time.Now().After(deadline) {
			m := getText(t, adminAt, "/metrics")
			t.Fatalf("after 60s: %d VIPA ports open (%d before), %d DPT rows, refused %s", open(), base, len(dpt(t, adminAt)),
				m[strings.LastIndex(m, "caddy_vipa_dynamic_ports_refused_total"):][:120])
		}
		time.Sleep(20 * time.Millisecond)
	}
	up := time.Since(start)
	// Spot check: the last ports of each node accept through the VIPA (all
	// but as many as the routing node could not open).
	failed := 0
	for _, ln := range []net.Listener{lns[perNode-1], lns[perNode-2], lns[2*perNode-1], lns[2*perNode-2], lns[3*perNode-1], lns[3*perNode-2]} {
		p := ln.Addr().(*net.TCPAddr).Port
		if dialRefused(fmt.Sprintf("%s:%d", vip, p)) {
			t.Logf("VIPA:%d refused", p)
			failed++
		}
	}
	if r := refused(); failed > r {
		t.Fatalf("%d spot-checked VIPA ports refused, %d counted as refused by the routing node", failed, r)
	}
	rss1, fds1 := procRSS(t, pa.cmd.Process.Pid), openFDs(t, pa.cmd.Process.Pid)

	start = time.Now()
	for _, ln := range lns {
		ln.Close()
	}
	waitFor(t, 60*time.Second, "the VIPA ports to close", func() bool { return open() <= base })
	down := time.Since(start)

	t.Logf("3 nodes × %d ports: listens took %v; all %d rows routable (%d VIPA ports open) %v after the first listen",
		perNode, listened.Round(time.Millisecond), 3*perNode, len(distinct), up.Round(time.Millisecond))
	t.Logf("routing node: +%d descriptors (%.2f per VIPA port), +%d KiB RSS (%.1f KiB per VIPA port)",
		fds1-fds0, float64(fds1-fds0)/float64(len(distinct)), (rss1-rss0)/1024, float64(rss1-rss0)/1024/float64(len(distinct)))
	t.Logf("all closed %v after the applications stopped", down.Round(time.Millisecond))
}

// procRSS is a process's resident set in bytes.
func procRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb * 1024
		}
	}
	return 0
}
