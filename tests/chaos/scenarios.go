//go:build linux

package main

import "github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

// scenarios in run order.
var scenarios = []scenario{
	{name: "held", run: held, what: "hold thousands of connections: CRT exact; descriptors and goroutines back after close"},
	{name: "fd-exhaustion", run: fdExhaustion, what: "more clients than the routing node's descriptor limit fits; all close; new clients are served"},
	{name: "target-kill", run: targetKill, what: "a target's app killed mid-stream and under a steady connection rate"},
	{name: "blackhole", run: blackhole, what: "a target that drops SYNs (full accept queue): dial timeout, next target"},
	{name: "health", run: health, what: "1,000 paced short connections to 3 targets, 1 dropping SYNs: none fail; latency during the first dial timeout and after"},
	{name: "sigstop", run: sigstop, what: "a target's Caddy and app stopped (SIGSTOP) under load, then continued"},
	{name: "routing-kill", run: routingKill, what: "the routing node killed (SIGKILL) and restarted; its config joins the targets"},
	{name: "routing-kill-nojoin", run: routingKillNoJoin, long: true, what: "the routing node killed and restarted; its config names no member to join"},
	{name: "reloads", run: reloads, what: "config reloads under streams and a steady connection rate: nothing cut, CRT exact"},
	{name: "silent", run: silent, what: "clients that connect and say nothing, beside normal traffic"},
	{name: "short", run: shortConns, long: true, what: "short connections one after another: RSS, descriptors and goroutines before and after"},
	{name: "gossip-junk", run: gossipJunk, what: "junk and stalled state-channel streams on the gossip port: memory bounded, no log flood"},
	{name: "hostile-reports", run: hostileReports, what: "a member with the fleet key forges reports for another node's address, VIPAs and ports"},
	{name: "hostile-definition", run: hostileDefinition, what: "a member with the fleet key and a lower name defines an established VIPA"},
}

func hasRow(rows []harness.DPTRow, port int, target string) bool {
	for _, r := range rows {
		if r.VIPA == vipa && r.Port == port && r.Node == target && r.Ready > 0 {
			return true
		}
	}
	return false
}
