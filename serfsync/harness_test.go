package serfsync

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestMain(m *testing.M) {
	// memberlist's probes wait out their timeout after Shutdown (≤ 1 s).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// tnode is one agent under test and what its callbacks told it.
type tnode struct {
	*Agent
	name string
	ip   netip.Addr
	logs *observer.ObservedLogs

	mu        sync.Mutex
	rows      map[string][]vipa.Listener // the DPT as OnReport and OnMemberGone built it
	defs      []KnownDefinition
	listeners []vipa.Listener
	changed   chan struct{} // signalled after each OnReport
}

// fleetOpts shape the agents of a test fleet.
type fleetOpts struct {
	profile   string
	reconcile time.Duration
	keys      [][]byte
	net       *faultNet
	hooks     func(h *hooks)
}

func (o fleetOpts) config(name string, ip netip.Addr, port uint16, join []string) Config {
	h := &hooks{reconcile: o.reconcile, leaveDelay: 50 * time.Millisecond, reconnect: 500 * time.Millisecond}
	if h.reconcile == 0 {
		h.reconcile = 300 * time.Millisecond
	}
	if o.net != nil {
		h.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return &faultTransport{NodeAwareTransport: t, self: ip, net: o.net}
		}
	}
	if o.hooks != nil {
		o.hooks(h)
	}
	profile := o.profile
	if profile == "" {
		profile = "fast"
	}
	return Config{
		NodeName:  name,
		BindAddr:  netip.AddrPortFrom(ip, port),
		Advertise: ip,
		Join:      join,
		Keys:      o.keys,
		Label:     "test",
		Profile:   profile,
		hooks:     h,
	}
}

// testIP returns the i-th test agent's address, 127.0.1.1 onwards: out
// of the VIPAs' way (127.0.0.x).
func testIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)})
}

func startNode(t testing.TB, cfg Config) *tnode {
	t.Helper()
	return startNodeWith(t, cfg, nil)
}

// startNodeWith runs before, if any, between New and Start.
func startNodeWith(t testing.TB, cfg Config, before func(*tnode)) *tnode {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	cfg.Logger = zap.New(core)
	if os.Getenv("SERFSYNC_LOG") != "" {
		l, _ := zap.NewDevelopment()
		cfg.Logger = l.Named(cfg.NodeName)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &tnode{Agent: a, name: cfg.NodeName, ip: cfg.Advertise, logs: logs,
		rows: map[string][]vipa.Listener{}, changed: make(chan struct{}, 1)}
	a.OnReport = func(node string, rows []vipa.Listener) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if len(rows) == 0 {
			delete(n.rows, node)
		} else {
			n.rows[node] = rows
		}
		select {
		case n.changed <- struct{}{}:
		default:
		}
	}
	a.OnMemberGone = func(node string) {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.rows, node)
	}
	a.OnDefinitions = func(d []KnownDefinition) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.defs = d
	}
	if before != nil {
		before(n)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// startFleet starts n agents joined through the first.
func startFleet(t testing.TB, count int, o fleetOpts) []*tnode {
	t.Helper()
	nodes := make([]*tnode, 0, count)
	first := startNode(t, o.config("n00", testIP(0), 0, nil))
	nodes = append(nodes, first)
	join := []string{first.BindAddr().String()}
	for i := 1; i < count; i++ {
		nodes = append(nodes, startNode(t, o.config(fmt.Sprintf("n%02d", i), testIP(i), 0, join)))
	}
	t.Cleanup(func() { stopAll(nodes) })
	waitFor(t, 20*time.Second, "all members alive", func() bool {
		for _, n := range nodes {
			if alive(n) != count {
				return false
			}
		}
		return true
	})
	return nodes
}

func alive(n *tnode) int {
	c := 0
	for _, m := range n.Members() {
		if m.Status == "alive" {
			c++
		}
	}
	return c
}

// stopAll stops agents in parallel: each leave waits for its broadcast.
func stopAll(nodes []*tnode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.Stop()
		}()
	}
	wg.Wait()
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
	return 0
}

func (n *tnode) set(ls []vipa.Listener) {
	n.mu.Lock()
	n.listeners = slices.Clone(ls)
	n.mu.Unlock()
	n.SetReport(ls)
}

func (n *tnode) dpt() map[string][]vipa.Listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string][]vipa.Listener, len(n.rows))
	for k, v := range n.rows {
		out[k] = slices.Clone(v)
	}
	return out
}

// truth is what routing node r must hold: every live node's lines for the
// VIPAs r owns (the earliest, then the lowest name), in a definition's ports, from a
// candidate, with Ready in range, at the node's advertise address.
func truth(r *tnode, live []*tnode, defs []*vipa.Definition) map[string][]vipa.Listener {
	owner := map[netip.Addr]*vipa.Definition{}
	for _, d := range defs {
		if o := owner[d.VIPA]; o == nil || d.Since < o.Since || d.Since == o.Since && d.RoutingNode < o.RoutingNode {
			owner[d.VIPA] = d
		}
	}
	out := map[string][]vipa.Listener{}
	for _, n := range live {
		n.mu.Lock()
		ls := canonicalListeners(n.listeners)
		n.mu.Unlock()
		var rows []vipa.Listener
		for _, l := range ls {
			d := owner[l.VIPA]
			if d == nil || d.RoutingNode != r.name || !d.Ports.Contains(l.Port) || !d.Candidate(n.name, n.ip) {
				continue
			}
			rows = append(rows, vipa.Listener{VIPA: l.VIPA, Port: l.Port, Address: netip.AddrPortFrom(n.ip, l.Port), Ready: l.Ready, State: l.State, Weight: l.Weight})
		}
		if len(rows) > 0 {
			out[n.name] = rows
		}
	}
	return out
}

// diffDPT names the nodes whose rows differ, with both versions (a few).
func diffDPT(got, want map[string][]vipa.Listener) string {
	var b strings.Builder
	shown := 0
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(got, want))) {
		if slices.Equal(got[k], want[k]) {
			continue
		}
		if shown++; shown <= 3 {
			fmt.Fprintf(&b, "\n  %s: got %v\n  %s: want %v", k, got[k], k, want[k])
		}
	}
	fmt.Fprintf(&b, "\n  %d nodes differ", shown)
	return b.String()
}

func mergeKeys(x, y map[string][]vipa.Listener) map[string]bool {
	out := map[string]bool{}
	for k := range x {
		out[k] = true
	}
	for k := range y {
		out[k] = true
	}
	return out
}

func equalDPT(x, y map[string][]vipa.Listener) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if !slices.Equal(v, y[k]) {
			return false
		}
	}
	return true
}

func waitExact(t testing.TB, d time.Duration, r *tnode, live []*tnode, defs []*vipa.Definition) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, want := r.dpt(), truth(r, live, defs)
		if equalDPT(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: DPT not exact after %v: %s\nstats %v", r.name, d, diffDPT(got, want), r.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func def(v string, node string, ports vipa.PortSet, dest ...string) *vipa.Definition {
	if len(dest) == 0 {
		dest = []string{vipa.DestAll}
	}
	return &vipa.Definition{VIPA: netip.MustParseAddr(v), Ports: ports, DestIP: dest, Distmethod: vipa.RoundRobin, RoutingNode: node}
}

// The definitions codec with what it refuses or drops ignored.
func ignoreDef(*vipa.Definition, error) {}

func canonicalDefsT(defs []*vipa.Definition, node string) []*vipa.Definition {
	return canonicalDefs(defs, node, ignoreDef)
}

func encodeDefsT(defs []*vipa.Definition) []byte {
	_, body := encodeDefs(defs, ignoreDef)
	return body
}

func decodeDefsT(body []byte, node string) ([]*vipa.Definition, error) {
	return decodeDefs(body, node, ignoreDef)
}

func ports(rs ...string) vipa.PortSet {
	var out []vipa.PortRange
	for _, s := range rs {
		r, err := vipa.ParsePortRange(s)
		if err != nil {
			panic(err)
		}
		out = append(out, r)
	}
	return vipa.NewPortSet(out)
}

// randomListeners draws a report over the given VIPAs and ports, with some
// lines no routing node may accept mixed in.
func randomListeners(rng *rand.Rand, vipas []netip.Addr, lo, hi uint16, junk bool) []vipa.Listener {
	var ls []vipa.Listener
	for _, v := range vipas {
		for p := lo; p <= hi; p++ {
			if rng.IntN(2) == 0 {
				ls = append(ls, vipa.Listener{VIPA: v, Port: p, Ready: 1 + rng.IntN(3)})
			}
		}
	}
	if junk {
		ls = append(ls, vipa.Listener{VIPA: netip.MustParseAddr("127.0.0.250"), Port: 80, Ready: 1})
	}
	return ls
}

// faultNet injects loss and partitions between test agents by IP.
type faultNet struct {
	mu      sync.Mutex
	loss    float64
	blocked map[[2]netip.Addr]bool
}

func (f *faultNet) drop(from, to netip.Addr, packet bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked[[2]netip.Addr{from, to}] {
		return true
	}
	return packet && f.loss > 0 && rand.Float64() < f.loss
}

// partition cuts every path between groups a and b, both ways.
func (f *faultNet) partition(a, b []*tnode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked == nil {
		f.blocked = map[[2]netip.Addr]bool{}
	}
	for _, x := range a {
		for _, y := range b {
			f.blocked[[2]netip.Addr{x.ip, y.ip}] = true
			f.blocked[[2]netip.Addr{y.ip, x.ip}] = true
		}
	}
}

func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = nil
}

func (f *faultNet) setLoss(p float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loss = p
}

// faultTransport drops what faultNet says on the sending side.
type faultTransport struct {
	memberlist.NodeAwareTransport
	self netip.Addr
	net  *faultNet
}

func addrIP(s string) netip.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.net.drop(t.self, addrIP(addr), true) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.net.drop(t.self, addrIP(a.Addr), true) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *faultTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if t.net.drop(t.self, addrIP(addr), false) {
		return nil, fmt.Errorf("partitioned from %s", addr)
	}
	return t.NodeAwareTransport.DialTimeout(addr, d)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	if t.net.drop(t.self, addrIP(a.Addr), false) {
		return nil, fmt.Errorf("partitioned from %s", a.Addr)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, d)
}

// kill shuts serf down without leaving, as a crash looks to the fleet.
func (a *Agent) kill() {
	a.stopped.Do(func() {
		a.closeConns()
		_ = a.serf.Shutdown()
		a.wg.Wait()
	})
}
