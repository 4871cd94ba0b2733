package serfsync

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// TestRestartRejoinsFromSnapshot: a routing node without a join list,
// stopped gracefully or crashed, is back in its fleet at once after a
// restart, from its snapshot, and its DPT is whole again.
func TestRestartRejoinsFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	o := fleetOpts{}
	snap := func(cfg Config) Config {
		cfg.SnapshotPath = filepath.Join(dir, cfg.NodeName+".snapshot")
		return cfg
	}
	first := startNode(t, snap(o.config("n00", testIP(0), 0, nil)))
	join := []string{first.BindAddr().String()}
	nodes := []*tnode{first,
		startNode(t, snap(o.config("n01", testIP(1), 0, join))),
		startNode(t, snap(o.config("n02", testIP(2), 0, join)))}
	t.Cleanup(func() { stopAll(nodes) })
	waitFor(t, 10*time.Second, "fleet formed", func() bool { return alive(nodes[0]) == 3 && alive(nodes[2]) == 3 })
	defs := routed(nodes)
	nodes[1].set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	nodes[2].set([]vipa.Listener{{VIPA: vipaA, Port: 8081, Ready: 2}})
	waitExact(t, 3*time.Second, nodes[0], nodes, defs)

	for _, crash := range []bool{false, true} {
		old := nodes[0]
		port := old.BindAddr().Port()
		if crash {
			old.kill()
		} else {
			_ = old.Stop()
		}
		start := time.Now()
		fresh := startNodeWith(t, snap(o.config("n00", testIP(0), port, nil)), func(n *tnode) { n.SetDefinitions(defs) })
		nodes[0] = fresh
		d := waitFor(t, 3*time.Second, "restarted node back in its fleet", func() bool { return alive(fresh) == 3 })
		waitExact(t, 3*time.Second, fresh, nodes, defs)
		t.Logf("crash %v: rejoined after %v, DPT exact after %v", crash, d, time.Since(start))
	}

	// Without a snapshot it is alone: what the snapshot is for.
	old := nodes[0]
	port := old.BindAddr().Port()
	_ = old.Stop()
	alone := startNode(t, o.config("n00", testIP(0), port, nil))
	nodes[0] = alone
	time.Sleep(time.Second)
	if n := alive(alone); n != 1 {
		t.Errorf("without a snapshot the restarted node sees %d members after 1 s", n)
	}
}

func TestSnapshotUnwritable(t *testing.T) {
	dir := t.TempDir()
	cfg := fleetOpts{}.config("n00", testIP(0), 0, nil)
	cfg.SnapshotPath = filepath.Join(dir, "file", "n00.snapshot")
	if err := writable(filepath.Join(dir, "file")); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg) // its directory is a file: runs without
	defer n.Stop()
	if n.logs.FilterMessageSnippet("fleet snapshot unavailable").Len() != 1 {
		t.Errorf("unwritable snapshot not logged: %v", n.logs.All())
	}
}
