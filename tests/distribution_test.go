//go:build linux

package tests

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// distVIPA is one VIPA of TestDistribution: its definition's options and
// the distribute handler's.
type distVIPA struct {
	ip      string
	port    int
	options string // the vipadistribute block's lines
	handler string // the distribute block's lines
}

func (v distVIPA) addr() string { return fmt.Sprintf("%s:%d", v.ip, v.port) }

// distRoutes writes the routing node's vipadistribute statements and the
// layer4 servers of vs.
func distRoutes(vs []distVIPA) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "\t\tvipadistribute define %s port %d {\n\t\t\t%s\n\t\t}\n",
			v.ip, v.port, strings.ReplaceAll(strings.TrimSpace(v.options), "\n", "\n\t\t\t"))
	}
	b.WriteString("\t}\n\tlayer4 {\n")
	for _, v := range vs {
		fmt.Fprintf(&b, "\t\t%s {\n\t\t\troute {\n\t\t\t\tdistribute {\n\t\t\t\t\t%s\n\t\t\t\t}\n\t\t\t}\n\t\t}\n", v.addr(), v.handler)
	}
	b.WriteString("\t}")
	return b.String()
}

// distNodes are the fleet's nodes and advertise addresses, routing node first.
var distNodes = [][2]string{{"caddy-a", "127.0.0.1"}, {"caddy-b", "127.0.0.2"}, {"caddy-c", "127.0.0.3"}}

// TestDistribution runs a three-node fleet of the real binary with one VIPA
// per Distribution feature, written in the Caddyfile grammar: weights,
// hotstandby with and without autoswitchback and healthswitch, sourcehash,
// and the health of targets that refuse or drop SYNs.
//
// caddy-c reads its socket table only at start (listeners interval 10m):
// its rows stay while its applications come and go, which is how a target
// that refuses connections keeps its row.
func TestDistribution(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	vips := []string{"127.0.0.110", "127.0.0.111", "127.0.0.112", "127.0.0.113", "127.0.0.114", "127.0.0.115", "127.0.0.116", "127.0.0.117", "127.0.0.118"}
	pp := harness.NewPortPicker()
	pick := func() int {
		p, err := pp.Pick(append(ips, vips...)...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	hot := "distmethod hotstandby {\n\tautoswitchback %s\n}\ndestip caddy-b preferred\ndestip caddy-c backup 100\ndestip caddy-a backup 50"
	// caddy-c is the preferred: its row stays when its application stops.
	healthHot := "distmethod hotstandby {\n\thealthswitch %s\n}\ndestip caddy-c preferred\ndestip caddy-b backup 100\ndestip caddy-a backup 50"
	var (
		weights  = distVIPA{ip: vips[0], port: pick(), options: "destip caddy-a weight 3\ndestip caddy-b\ndestip caddy-c"}
		active   = distVIPA{ip: vips[1], port: pick(), options: "distmethod weightedactive\ndestip caddy-a weight 3\ndestip caddy-b caddy-c"}
		hotOn    = distVIPA{ip: vips[2], port: pick(), options: fmt.Sprintf(hot, "on")}
		hotOff   = distVIPA{ip: vips[3], port: pick(), options: fmt.Sprintf(hot, "off")}
		hash     = distVIPA{ip: vips[4], port: pick(), options: "destip all\ndistmethod sourcehash"}
		health   = distVIPA{ip: vips[5], port: pick(), options: "destip all", handler: "dial_timeout 1s\nmax_attempts 1"}
		hsOn     = distVIPA{ip: vips[6], port: pick(), options: fmt.Sprintf(healthHot, "on")}
		hsOff    = distVIPA{ip: vips[7], port: pick(), options: fmt.Sprintf(healthHot, "off")}
		hsDrop   = distVIPA{ip: vips[8], port: pick(), options: fmt.Sprintf(healthHot, "off"), handler: "dial_timeout 500ms"}
		all      = []distVIPA{weights, active, hotOn, hotOff, hash, health, hsOn, hsOff, hsDrop}
		gossip   = pick()
		seed     = fmt.Sprintf("127.0.0.1:%d", gossip)
		apps     = map[string]*app{} // by node and port
		appKey   = func(node string, port int) string { return fmt.Sprintf("%s:%d", node, port) }
		listenOn = func(node, ip string, port int) {
			apps[appKey(node, port)] = startApp(t, node, reusePortListen(t, fmt.Sprintf("%s:%d", ip, port)))
		}
	)
	for _, v := range all {
		for _, n := range distNodes {
			switch {
			case v == health && n[0] == "caddy-b", v == hsDrop && n[0] == "caddy-c":
				blackhole(t, fmt.Sprintf("%s:%d", n[1], v.port))
			default:
				listenOn(n[0], n[1], v.port)
			}
		}
	}

	var nodes []fleetNode
	for i, n := range distNodes {
		fn := newFleetNode(t, n[0], n[1], gossip)
		if i > 0 {
			fn.join = []string{seed}
		}
		nodes = append(nodes, fn)
	}
	nodes[0].routes = distRoutes(all)
	admin := nodes[0].admin
	for _, n := range nodes {
		cfg := n.caddyfile()
		if n.name == "caddy-c" {
			cfg = strings.Replace(cfg, "interval 50ms", "interval 10m", 1)
		}
		startCaddy(t, n.admin, cfg)
	}
	waitFor(t, 20*time.Second, "every VIPA's three rows", func() bool {
		n := map[string]int{}
		for _, r := range dpt(t, admin) {
			n[r.VIPA]++
		}
		for _, v := range all {
			if n[v.ip] != 3 {
				return false
			}
		}
		return true
	})

	t.Run("roundrobin weights 3:1:1", func(t *testing.T) {
		got := spread(t, weights.addr(), 100)
		t.Logf("100 connections: %v", got)
		for node, want := range map[string]int{"caddy-a": 60, "caddy-b": 20, "caddy-c": 20} {
			if d := got[node] - want; d < -3 || d > 3 {
				t.Errorf("100 connections spread %v, want 60/20/20 ±3", got)
				break
			}
		}
	})

	t.Run("weightedactive 3:1:1", func(t *testing.T) {
		held := map[string]int{}
		for range 50 {
			_, _, name := dialVIPA(t, active.addr())
			held[name]++
		}
		t.Logf("50 held connections: %v", held)
		for node, want := range map[string]int{"caddy-a": 30, "caddy-b": 10, "caddy-c": 10} {
			if d := held[node] - want; d < -1 || d > 1 {
				t.Errorf("50 held connections on %v, want 30/10/10 ±1", held)
				break
			}
		}
	})

	t.Run("hotstandby autoswitchback on", func(t *testing.T) {
		testHotStandby(t, admin, hotOn, apps[appKey("caddy-b", hotOn.port)], true)
	})
	t.Run("hotstandby autoswitchback off", func(t *testing.T) {
		testHotStandby(t, admin, hotOff, apps[appKey("caddy-b", hotOff.port)], false)
	})

	t.Run("hotstandby healthswitch", func(t *testing.T) {
		testHealthSwitch(t, admin, hsOn, hsOff, func(v distVIPA) *app { return apps[appKey("caddy-c", v.port)] },
			func(v distVIPA) { listenOn("caddy-c", "127.0.0.3", v.port) })
	})

	t.Run("hotstandby healthswitch off, the preferred dropping SYNs", func(t *testing.T) {
		// caddy-c's listener drops every SYN: with healthswitch off it
		// stays the row in use, and each client waits out one dial
		// timeout on it before the retry takes it to caddy-b.
		before := metricValue(t, "\n"+getText(t, admin, "/metrics"), "\ncaddy_vipa_dial_failures_total")
		if got := spread(t, hsDrop.addr(), 5); got["caddy-b"] != 5 {
			t.Fatalf("5 connections went to %v, want all to caddy-b after the preferred's timeout", got)
		}
		if d := metricValue(t, "\n"+getText(t, admin, "/metrics"), "\ncaddy_vipa_dial_failures_total") - before; d != 5 {
			t.Errorf("5 clients made %d failed dials, want one timed-out dial each to the preferred", d)
		}
		for _, r := range dpt(t, admin) {
			if r.VIPA == hsDrop.ip && r.Node == "caddy-c" && (r.State != "active" || r.Health != "unhealthy") {
				t.Errorf("the preferred's row %+v, want active and unhealthy", r)
			}
		}
	})

	t.Run("sourcehash keeps a client's target", func(t *testing.T) {
		targets := map[string]bool{}
		for i := range 8 {
			src := fmt.Sprintf("127.0.0.%d", 50+i)
			got := map[string]int{}
			for range 100 {
				got[dialFrom(t, src, hash.addr())]++
			}
			if len(got) != 1 {
				t.Fatalf("client %s's 100 connections went to %v, want one target", src, got)
			}
			for n := range got {
				targets[n] = true
			}
		}
		if len(targets) < 2 {
			t.Errorf("8 client addresses all went to %v: the hash does not spread", targets)
		}
	})

	t.Run("unhealthy targets", func(t *testing.T) {
		// caddy-c's application stops; caddy-c's row stays (it does not
		// read its socket table again), so the row refuses.
		apps[appKey("caddy-c", health.port)].stopListening()
		failures := func() string {
			for _, l := range strings.Split(getText(t, admin, "/metrics"), "\n") {
				if strings.HasPrefix(l, "caddy_vipa_dial_failures_total ") {
					return l
				}
			}
			return ""
		}
		// Each client is served although two of three rows fail and the
		// handler tries one unhealthy row at most: the failing rows are
		// demoted, and the healthy one is dialed first.
		for i := range 40 {
			c, r, name := dialVIPA(t, health.addr())
			if name != "caddy-a" {
				t.Fatalf("client %d served by %s", i, name)
			}
			echo(t, c, r, "still here")
			c.Close()
		}
		rows := map[string]dptRow{}
		for _, r := range dpt(t, admin) {
			if r.VIPA == health.ip {
				rows[r.Node] = r
			}
		}
		for node, want := range map[string]string{"caddy-a": "healthy", "caddy-b": "unhealthy", "caddy-c": "unhealthy"} {
			if r := rows[node]; r.Health != want || (want == "unhealthy" && r.TSR >= 100) {
				t.Errorf("%s's row %+v, want %s", node, r, want)
			}
		}
		// Once demoted, the failing rows cost no client a dial: the count
		// of failed dials stands still.
		before := failures()
		for range 20 {
			c, _, _ := dialVIPA(t, health.addr())
			c.Close()
		}
		if after := failures(); after != before || before == "" {
			t.Errorf("failed dials went from %q to %q while two rows were unhealthy", before, after)
		}
		m := getText(t, admin, "/metrics")
		for _, reason := range []string{"unhealthy", "no_answer"} {
			if want := `caddy_vipa_refused_connections_total{reason="` + reason + `"} 0`; !strings.Contains(m, want) {
				t.Errorf("metrics lack %s: a client was closed", want)
			}
		}

		// caddy-c's application listens again: the probe returns its row.
		listenOn("caddy-c", "127.0.0.3", health.port)
		waitFor(t, 20*time.Second, "caddy-c's row healthy again", func() bool {
			for _, r := range dpt(t, admin) {
				if r.VIPA == health.ip && r.Node == "caddy-c" {
					return r.Health == "healthy"
				}
			}
			return false
		})
	})
}

// testHotStandby: every connection goes to the preferred caddy-b; when its
// application stops, to the first backup caddy-c (rank 100, not caddy-a's
// 50); when it listens again, back to caddy-b with autoswitchback, else
// still to caddy-c.
func testHotStandby(t *testing.T, admin string, v distVIPA, b *app, autoswitchback bool) {
	only := func(when, want string) {
		t.Helper()
		if got := spread(t, v.addr(), 20); got[want] != 20 {
			t.Fatalf("%s: 20 connections went to %v, want all to %s", when, got, want)
		}
	}
	states := func() map[string]string {
		out := map[string]string{}
		for _, r := range dpt(t, admin) {
			if r.VIPA == v.ip {
				out[r.Node] = r.State
			}
		}
		return out
	}
	only("with the preferred listening", "caddy-b")
	if s := states(); s["caddy-b"] != "active" || s["caddy-c"] != "standby" || s["caddy-a"] != "standby" {
		t.Errorf("states %v, want caddy-b active, the backups standby", s)
	}

	b.stopListening()
	waitFor(t, 10*time.Second, "caddy-b's row to go", func() bool {
		_, ok := states()["caddy-b"]
		return !ok
	})
	only("with the preferred stopped", "caddy-c")
	// A client stays connected to caddy-c across the switch back: a row
	// holding connections is in use, so it reads active, not standby.
	held, _, name := dialVIPA(t, v.addr())
	if name != "caddy-c" {
		t.Fatalf("the held connection went to %s, want caddy-c", name)
	}

	startApp(t, "caddy-b", reusePortListen(t, fmt.Sprintf("127.0.0.2:%d", v.port)))
	waitFor(t, 10*time.Second, "caddy-b's row to return", func() bool {
		_, ok := states()["caddy-b"]
		return ok
	})
	if autoswitchback {
		only("with the preferred back", "caddy-b")
		if s := states(); s["caddy-b"] != "active" || s["caddy-c"] != "active" || s["caddy-a"] != "standby" {
			t.Errorf("states %v, want caddy-b active, caddy-c active (a connection), caddy-a standby", s)
		}
		held.Close()
		waitFor(t, 10*time.Second, "caddy-c standby once its last connection ends", func() bool {
			return states()["caddy-c"] == "standby"
		})
	} else {
		only("with the preferred back, autoswitchback off", "caddy-c")
		if s := states(); s["caddy-b"] != "standby" || s["caddy-c"] != "active" || s["caddy-a"] != "standby" {
			t.Errorf("states %v, want caddy-c active (in use), caddy-b and caddy-a standby", s)
		}
	}
}

// testHealthSwitch: the preferred caddy-c's application stops while its
// row stays, so its dials are refused. With healthswitch on (SD's
// HEALTHSWITCH) the row turns unhealthy and hotstandby leaves it for the
// first backup, caddy-b, which then takes every connection without a dial
// to caddy-c; it returns to caddy-c once a probe finds it answering. With
// healthswitch off the preferred stays the row in use (state active) while
// it is unhealthy: each new connection dials it first, and is carried to
// caddy-b by the handler's retry, so no client is closed; the first
// connection after its application listens again lands there.
func testHealthSwitch(t *testing.T, admin string, on, off distVIPA, appOf func(distVIPA) *app, listen func(distVIPA)) {
	failures := func() int {
		return metricValue(t, "\n"+getText(t, admin, "/metrics"), "\ncaddy_vipa_dial_failures_total")
	}
	row := func(v distVIPA, node string) dptRow {
		for _, r := range dpt(t, admin) {
			if r.VIPA == v.ip && r.Node == node {
				return r
			}
		}
		t.Fatalf("no row of %s for %s", node, v.ip)
		return dptRow{}
	}
	only := func(v distVIPA, n int, when, want string) {
		t.Helper()
		if got := spread(t, v.addr(), n); got[want] != n {
			t.Fatalf("%s: %d connections went to %v, want all to %s", when, n, got, want)
		}
	}
	for _, v := range []distVIPA{on, off} {
		only(v, 10, "with the preferred listening", "caddy-c")
		appOf(v).stopListening()
	}

	// healthswitch on: a few refused dials demote caddy-c; from then on
	// no client's connection dials it.
	only(on, 20, "healthswitch on, the preferred refusing", "caddy-b")
	if r := row(on, "caddy-c"); r.Health != "unhealthy" || r.State != "standby" {
		t.Errorf("healthswitch on: the refusing preferred's row %+v, want unhealthy and standby", r)
	}
	if r := row(on, "caddy-b"); r.State != "active" {
		t.Errorf("healthswitch on: the first backup's row %+v, want active", r)
	}
	before := failures()
	only(on, 20, "healthswitch on, the preferred demoted", "caddy-b")
	if after := failures(); after != before {
		t.Errorf("healthswitch on: failed dials went from %d to %d with the preferred unhealthy", before, after)
	}

	// healthswitch off: caddy-c stays in use although unhealthy; each
	// client dials it once, then reaches caddy-b.
	before = failures()
	only(off, 20, "healthswitch off, the preferred refusing", "caddy-b")
	if after := failures(); after-before != 20 {
		t.Errorf("healthswitch off: 20 clients made %d failed dials, want one each to the preferred", after-before)
	}
	if r := row(off, "caddy-c"); r.Health != "unhealthy" || r.State != "active" {
		t.Errorf("healthswitch off: the refusing preferred's row %+v, want unhealthy and still active", r)
	}
	if r := row(off, "caddy-b"); r.State != "standby" {
		t.Errorf("healthswitch off: the first backup's row %+v, want standby", r)
	}
	m := getText(t, admin, "/metrics")
	for _, reason := range []string{"unhealthy", "no_answer"} {
		if want := `caddy_vipa_refused_connections_total{reason="` + reason + `"} 0`; !strings.Contains(m, want) {
			t.Errorf("metrics lack %s: a client was closed", want)
		}
	}

	// The applications listen again. healthswitch off: the next
	// connection goes to the preferred, unhealthy as its row still is.
	listen(off)
	listen(on)
	only(off, 5, "healthswitch off, the preferred back", "caddy-c")
	// healthswitch on: back once a probe finds caddy-c answering (probes
	// back off up to 30 s).
	waitFor(t, 45*time.Second, "caddy-c's row healthy again", func() bool { return row(on, "caddy-c").Health == "healthy" })
	only(on, 5, "healthswitch on, the preferred healthy again", "caddy-c")
}

// dialFrom connects to addr from the source address src and returns who
// served it.
func dialFrom(t *testing.T, src, addr string) string {
	t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting through %s from %s: %v", addr, src, err)
	}
	name, ok := strings.CutPrefix(strings.TrimSpace(line), "hello from ")
	if !ok {
		t.Fatalf("unexpected greeting %q", line)
	}
	return name
}

// blackhole listens on addr with a backlog of one that is never accepted,
// and fills it: the kernel drops every further SYN, as a host that is gone
// does, while the socket table still shows a listener.
func blackhole(t *testing.T, addr string) {
	t.Helper()
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	// With backlog 0 the accept queue holds one connection; a SYN that
	// finds it full is dropped.
	fill, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fill.Close() })
	waitFor(t, 5*time.Second, addr+" to drop SYNs", func() bool {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			c.Close() // the queue had room: that one fills it
			return false
		}
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	})
}
