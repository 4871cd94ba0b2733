//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRestartRejoinsWithoutJoin: a routing node whose config has no join
// list is back in its fleet at once after a restart: it rejoins the
// members it recorded in Caddy's data directory.
func TestRestartRejoinsWithoutJoin(t *testing.T) {
	gossip := freePort(t)
	seed := fmt.Sprintf("127.0.0.1:%d", gossip)
	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = routingBlock(freePort(t))
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, seed)
	dir := t.TempDir()
	pa := startCaddyIn(t, dir, a.admin, a.caddyfile())
	startCaddy(t, b.admin, b.caddyfile())
	bothAlive := func() bool {
		m := members(t, a.admin)
		return m["caddy-a"] == "alive" && m["caddy-b"] == "alive"
	}
	waitFor(t, 10*time.Second, "two alive members", bothAlive)

	pa.stop()
	snap := filepath.Join(dir, "caddy", "vipa", fmt.Sprintf("caddy-a-%d.snapshot", gossip))
	if fi, err := os.Stat(snap); err != nil || fi.Size() == 0 {
		t.Fatalf("no fleet snapshot at %s: %v", snap, err)
	}
	start := time.Now()
	startCaddyIn(t, dir, a.admin, a.caddyfile())
	waitFor(t, 3*time.Second, "caddy-b alive again on the restarted node", bothAlive)
	t.Logf("restarted routing node without join: fleet back after %v", time.Since(start))
}
