//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// TestFleetStartsAtOnce starts a routing node and two ranked backups whose
// join lists name each other at once, the backups first and the routing
// node some tens of milliseconds after them, five times. From the moment
// each process starts, every node's /vipa/vipadyn is read every 10 ms until
// the fleet has settled (caddy-a active, the backups backup) and two
// seconds more: no node may ever name another owner than caddy-a, no
// backup may show itself routing the VIPA, and no two nodes may route it at
// once. A backup that decided as soon as its join reached the other backup
// claimed the VIPA, with no routing node in view, until caddy-a appeared.
func TestFleetStartsAtOnce(t *testing.T) {
	// The routing node's start after the backups': each under the backups'
	// settle wait (2 s with profile fast), so a backup that claims has
	// decided before the routing node it waits for was in view.
	for _, lag := range []time.Duration{0, 30, 80, 150, 300} {
		lag *= time.Millisecond
		t.Run(fmt.Sprintf("owner+%v", lag), func(t *testing.T) { startAtOnce(t, "127.0.0.115", lag) })
	}
}

func startAtOnce(t *testing.T, vip string, lag time.Duration) {
	a, b, c := rankedFleet(t, vip)

	w := newVipadynWatch(vip, a.name)
	var procs []*caddyProc
	for _, n := range []fleetNode{c, b} {
		w.watch(n)
		procs = append(procs, launchCaddy(t, n.name, t.TempDir(), n.admin, n.caddyfile()))
	}
	time.Sleep(lag)
	w.watch(a)
	procs = append(procs, launchCaddy(t, a.name, t.TempDir(), a.admin, a.caddyfile()))

	var settledAt time.Duration
	waitFor(t, 15*time.Second, "the fleet to settle", func() bool {
		settledAt = time.Since(w.start)
		return w.all(settledRanked)
	})
	w.end(t, procs, fmt.Sprintf("settled %v after the first start", settledAt.Round(time.Millisecond)))
}

// end watches 2 s more, stops the watch and the nodes, and judges what
// was read: each node's rows as they changed are logged, with what.
func (w *vipadynWatch) end(t *testing.T, procs []*caddyProc, what string) {
	t.Helper()
	time.Sleep(2 * time.Second)
	close(w.stop)
	w.wg.Wait()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.stop)
	}
	wg.Wait()

	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range []string{"caddy-a", "caddy-b", "caddy-c"} {
		t.Logf("%s (%d reads): %s", n, w.reads[n], strings.Join(w.seen[n], ", "))
	}
	t.Log(what)
	if len(w.bad) > 0 {
		t.Errorf("%d reads broke the ownership rule, the first:\n%s", w.nbad, strings.Join(w.bad, "\n"))
	}
}

// vipadynWatch reads every node's /vipa/vipadyn row of one VIPA as fast as
// is reasonable and notes each read that breaks the rule: only the
// defining node owns the VIPA, and at most one node routes it.
type vipadynWatch struct {
	vip, owner string
	start      time.Time
	stop       chan struct{}
	wg         sync.WaitGroup

	mu     sync.Mutex
	latest map[string]vipadynRow
	seen   map[string][]string // each node's rows as they changed, timed from start
	reads  map[string]int
	bad    []string // the first violations
	nbad   int
}

// watch reads n's row every 10 ms, from now until stop; reads that fail
// (the process not yet listening) are skipped.
func (w *vipadynWatch) watch(n fleetNode) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		client := &http.Client{Timeout: time.Second}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			var rows []vipadynRow
			body, err := harness.Get(client, n.admin, "/vipa/vipadyn")
			if err != nil || json.Unmarshal(body, &rows) != nil {
				continue
			}
			for _, r := range rows {
				if r.VIPA == w.vip {
					w.note(n.name, r)
				}
			}
		}
	}()
}

func (w *vipadynWatch) note(name string, r vipadynRow) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := time.Since(w.start).Round(time.Millisecond)
	if w.reads == nil {
		w.reads = map[string]int{}
	}
	w.reads[name]++
	if old, ok := w.latest[name]; !ok || old.Status != r.Status || old.Owner != r.Owner {
		w.seen[name] = append(w.seen[name], fmt.Sprintf("+%v %s/%q", at, r.Status, r.Owner))
	}
	w.latest[name] = r
	var why []string
	if r.Owner != "" && r.Owner != w.owner {
		why = append(why, "names owner "+r.Owner)
	}
	if name != w.owner && r.Status != "none" && r.Status != "backup" {
		why = append(why, "a backup in status "+r.Status)
	}
	var routing []string
	for n, l := range w.latest {
		if l.Status == "active" || l.Status == "quiescing" {
			routing = append(routing, n)
		}
	}
	if len(routing) > 1 {
		why = append(why, fmt.Sprintf("routed by %v at once", routing))
	}
	if len(why) > 0 {
		w.nbad++
		if len(w.bad) < 10 {
			w.bad = append(w.bad, fmt.Sprintf("+%v %s %+v: %s", at, name, r, strings.Join(why, "; ")))
		}
	}
}

// all says cond holds for the latest row of every node.
func (w *vipadynWatch) all(cond func(name string, r vipadynRow) bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range []string{"caddy-a", "caddy-b", "caddy-c"} {
		r, ok := w.latest[n]
		if !ok || !cond(n, r) {
			return false
		}
	}
	return true
}

// TestFleetRestartsAtOnce kills a settled fleet of a routing node and two
// ranked backups and starts it again at once, three times. Each node's
// serf rejoins the members of its snapshot as it starts, before its config
// is in, so the others first see it with no ranks and no definitions: a
// backup must not take such a member for the fleet and claim the VIPA.
// The same watch as TestFleetStartsAtOnce applies from the restart on.
func TestFleetRestartsAtOnce(t *testing.T) {
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { restartAtOnce(t, "127.0.0.116") })
	}
}

func restartAtOnce(t *testing.T, vip string) {
	a, b, c := rankedFleet(t, vip)
	nodes := []fleetNode{c, b, a}
	dirs := map[string]string{}
	for _, n := range nodes {
		dirs[n.name] = t.TempDir()
	}
	launch := func() (*vipadynWatch, []*caddyProc) {
		w := newVipadynWatch(vip, a.name)
		var procs []*caddyProc
		for _, n := range nodes {
			w.watch(n)
			procs = append(procs, launchCaddy(t, n.name, dirs[n.name], n.admin, n.caddyfile()))
		}
		waitFor(t, 15*time.Second, "the fleet to settle", func() bool { return w.all(settledRanked) })
		return w, procs
	}

	first, procs := launch()
	time.Sleep(time.Second) // the snapshots are flushed
	close(first.stop)
	first.wg.Wait()
	for _, p := range procs {
		_ = p.cmd.Process.Kill()
	}
	for _, p := range procs {
		<-p.exited
	}
	for name, dir := range dirs {
		if snaps, _ := filepath.Glob(filepath.Join(dir, "caddy", "vipa", "*.snapshot")); len(snaps) == 0 {
			t.Fatalf("%s left no serf snapshot in %s", name, dir)
		}
	}

	w, procs := launch()
	settledAt := time.Since(w.start)
	w.end(t, procs, fmt.Sprintf("settled %v after the restart", settledAt.Round(time.Millisecond)))
}

// rankedFleet is the fleet of both tests: caddy-a defines vip, caddy-b
// and caddy-c back it up with ranks 100 and 50; each joins the other two.
func rankedFleet(t *testing.T, vip string) (a, b, c fleetNode) {
	port := freePort(t)
	gossip := freePort(t)
	at := func(ip string) string { return fmt.Sprintf("%s:%d", ip, gossip) }
	a = newFleetNode(t, "caddy-a", "127.0.0.1", gossip, at("127.0.0.2"), at("127.0.0.3"))
	a.routes = fmt.Sprintf("\t\tvipadistribute define %s port %d destip all\n\t}", vip, port)
	b = newFleetNode(t, "caddy-b", "127.0.0.2", gossip, at("127.0.0.1"), at("127.0.0.3"))
	b.routes = fmt.Sprintf("\t\tvipabackup %s rank 100\n\t}", vip)
	c = newFleetNode(t, "caddy-c", "127.0.0.3", gossip, at("127.0.0.1"), at("127.0.0.2"))
	c.routes = fmt.Sprintf("\t\tvipabackup %s rank 50\n\t}", vip)
	return a, b, c
}

// settledRanked says node name's row is the settled rankedFleet's.
func settledRanked(name string, r vipadynRow) bool {
	x := map[string]vipadynRow{
		"caddy-a": {Status: "active", Rank: 0, Owner: "caddy-a"},
		"caddy-b": {Status: "backup", Rank: 100, Owner: "caddy-a"},
		"caddy-c": {Status: "backup", Rank: 50, Owner: "caddy-a"},
	}[name]
	return r.Status == x.Status && r.Rank == x.Rank && r.Owner == x.Owner
}

func newVipadynWatch(vip, owner string) *vipadynWatch {
	return &vipadynWatch{vip: vip, owner: owner, start: time.Now(), latest: map[string]vipadynRow{},
		seen: map[string][]string{}, stop: make(chan struct{})}
}
