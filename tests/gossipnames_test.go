//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGossipHostNames: caddy-b's gossip bind and join name hosts, which it
// resolves through a hosts file of its own (bind-mounted on /etc/hosts in
// a mount namespace of its own). The bind name is resolved at start; the
// join name first points where nothing listens, and once the file points
// it at caddy-a, a later join attempt resolves it again and joins.
func TestGossipHostNames(t *testing.T) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	writeHosts := func(seed string) {
		t.Helper()
		s := fmt.Sprintf("127.0.0.1 localhost\n127.0.0.2 vipa-b\n%s vipa-seed\n", seed)
		if err := os.WriteFile(hosts, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeHosts("127.0.0.99") // nothing listens there
	gossip, port := freePort(t), freePort(t)
	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = routingBlock(port)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, fmt.Sprintf("vipa-seed:%d", gossip))
	cfgB := strings.Replace(b.caddyfile(), fmt.Sprintf("gossip 127.0.0.2:%d", gossip), fmt.Sprintf("gossip vipa-b:%d", gossip), 1)
	if !strings.Contains(cfgB, "gossip vipa-b:") {
		t.Fatalf("config not rewritten:\n%s", cfgB)
	}
	startCaddy(t, a.admin, a.caddyfile())
	// The hosts file is bind-mounted, so rewriting it in place reaches
	// caddy-b; unshare and sh exec, so the process is Caddy's.
	pb := startCaddyVia(t, b.admin, cfgB, "unshare", "--mount", "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hosts)

	waitFor(t, 30*time.Second, "two failed join attempts", func() bool {
		return strings.Count(pb.log.String(), "joining fleet") >= 2
	})
	if s := members(t, a.admin)["caddy-b"]; s != "" {
		t.Fatalf("caddy-b is %q on caddy-a before its join name points there", s)
	}

	writeHosts("127.0.0.1")
	waitFor(t, 60*time.Second, "caddy-b to join at the name's new address", func() bool {
		return members(t, a.admin)["caddy-b"] == "alive" && members(t, b.admin)["caddy-a"] == "alive"
	})
	var rows []memberRow
	getJSON(t, a.admin, "/vipa/members", &rows)
	for _, r := range rows {
		if r.Name == "caddy-b" && r.Address != fmt.Sprintf("127.0.0.2:%d", gossip) {
			t.Errorf("caddy-b gossips from %s, want vipa-b's 127.0.0.2:%d", r.Address, gossip)
		}
	}

	// The fleet works: caddy-b's application becomes a row on caddy-a.
	startApp(t, "app-b", reusePortListen(t, fmt.Sprintf("127.0.0.2:%d", port)))
	waitFor(t, 15*time.Second, "caddy-b's row", func() bool { return dptNodes(t, a.admin)["caddy-b"] == 1 })
}
