package module

import (
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// whatIfPolicies are the distmethods with the policy each is tested with
// over targets a, b and c of weights 3, 2 and 1.
func whatIfPolicies() map[string]*tables.Policy {
	ps := map[string]*tables.Policy{}
	for _, m := range []string{vipa.RoundRobin, vipa.WeightedActive, vipa.LeastConn, vipa.SourceHash, vipa.TargetWeight, vipa.HotStandby} {
		p := &tables.Policy{Distmethod: m, TimedAffinity: time.Minute, MaxConns: 3,
			Destinations: []vipa.Destination{{Node: "a", Weight: 3}, {Node: "b", Weight: 2}, {Node: "c", Weight: 1}}}
		if m == vipa.HotStandby {
			p.Destinations = []vipa.Destination{{Node: "a", Role: vipa.RolePreferred}, {Node: "b", Role: vipa.RoleBackup, Rank: 2}, {Node: "c", Role: vipa.RoleBackup, Rank: 1}}
		}
		if m == vipa.TargetWeight {
			p.Destinations = nil // it weighs the rows by what their targets report: 3, 2, 1 here
		}
		if m != vipa.SourceHash {
			p.TimedAffinity = 0 // one client address: affinity would decide every time
		}
		ps[m] = p
	}
	return ps
}

// whatIfHandler is a distribute handler routing vln's VIPA by p to three
// live targets a, b and c, which greet with their name.
func whatIfHandler(t *testing.T, vln net.Listener, p *tables.Policy) (*Handler, *fleet.Fleet, netip.AddrPort) {
	t.Helper()
	h, f, va := testHandler(t, vln)
	def := f.Route(va.Addr()).Def.Clone()
	def.Distmethod, def.DestIP = p.Distmethod, []string{"a", "b", "c"}
	def.Options = vipa.Options{Destinations: p.Destinations, TimedAffinity: p.TimedAffinity, MaxConns: p.MaxConns}
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	f.Configure(fleet.Config{Node: "a", Defs: []*vipa.Definition{def}, Listeners: vipa.ListenersOff})
	for _, n := range []string{"a", "b", "c"} {
		_, addr := backend(t, n)
		setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: n, Address: addr, Ready: 1, Weight: 3 - int(n[0]-'a')})
	}
	return h, f, va
}

// ask is GET /vipa/route for the client address 127.0.0.1.
func ask(t *testing.T, f *fleet.Fleet, va netip.AddrPort) routeAnswer {
	t.Helper()
	a, err := answerRoute(f, routeQuery{vipa: va.Addr(), port: va.Port(), client: netip.MustParseAddrPort("127.0.0.1:0")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// connect opens a real connection through h and returns it with the node
// that greeted it, or "" when it was refused.
func connect(t *testing.T, h *Handler, vln net.Listener) (net.Conn, string) {
	t.Helper()
	c, done := through(t, h, vln, nil)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	n, _ := io.ReadFull(c, b)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return c, string(b[:n])
}

// crtReason is the reason /vipa/crt gives the connection from client.
func crtReason(t *testing.T, f *fleet.Fleet, client net.Addr) string {
	t.Helper()
	rows, err := crtRows(f, httptest.NewRequest("GET", "/vipa/crt", nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Client == client.String() {
			return r.Reason
		}
	}
	t.Fatalf("no CRT row for %s in %+v", client, rows)
	return ""
}

// TestRouteIsNextConnection: for each distmethod, over real connections
// that fill the targets to max_conns and end, /vipa/route names the target
// the next connection reaches, with the reason its CRT entry then gives.
func TestRouteIsNextConnection(t *testing.T) {
	for m, p := range whatIfPolicies() {
		t.Run(m, func(t *testing.T) {
			vln := listenVIPA(t)
			h, f, va := whatIfHandler(t, vln, p)
			var open []net.Conn
			for i := range 14 {
				a := ask(t, f, va)
				c, node := connect(t, h, vln)
				if node != a.Node {
					t.Fatalf("connection %d: /vipa/route said %q (%s), the connection reached %q", i, a.Node, a.Reason, node)
				}
				if node == "" {
					if !strings.HasPrefix(a.Reason, "refused") {
						t.Fatalf("connection %d refused; route reason %q", i, a.Reason)
					}
					c.Close()
				} else {
					if got := crtReason(t, f, c.LocalAddr()); got != a.Reason || a.Reason == "" {
						t.Fatalf("connection %d: CRT reason %q, route reason %q", i, got, a.Reason)
					}
					open = append(open, c)
				}
				if i%4 == 3 { // the oldest connection ends
					open[0].Close()
					open = open[1:]
					waitActive(t, f, int64(len(open)))
				}
			}
			for _, c := range open {
				c.Close()
			}
			waitCRTEmpty(t, f)
		})
	}
}

// waitActive waits until the DPT counts n active connections.
func waitActive(t *testing.T, f *fleet.Fleet, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got int64
		for _, r := range f.DPT.Rows() {
			got += r.ActiveConns
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d active connections, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRouteChangesNothing: a thousand questions leave the DPT counters, the
// affinities and the rotation as they were: the next connection still goes
// where the first answer said, round after round (a rotation stepped 1,000
// times would be 4 slots off in the 6-slot schedule of weights 3, 2, 1).
func TestRouteChangesNothing(t *testing.T) {
	for m, p := range whatIfPolicies() {
		t.Run(m, func(t *testing.T) {
			vln := listenVIPA(t)
			h, f, va := whatIfHandler(t, vln, p)
			for round := range 6 {
				rows, aff := f.DPT.Rows(), f.CRT.Affinities(time.Now())
				want := ask(t, f, va)
				for range 1000 {
					if a := ask(t, f, va); !reflect.DeepEqual(a, want) {
						t.Fatalf("answers differ:\n%+v\n%+v", want, a)
					}
				}
				if got := f.DPT.Rows(); !reflect.DeepEqual(got, rows) {
					t.Fatalf("DPT rows changed:\n%+v\n%+v", rows, got)
				}
				if got := f.CRT.Affinities(time.Now()); !sameAffinities(got, aff) {
					t.Fatalf("affinities changed:\n%+v\n%+v", aff, got)
				}
				c, node := connect(t, h, vln)
				c.Close()
				if node != want.Node {
					t.Fatalf("round %d: after 1,000 questions the connection reached %q, the answer was %q", round, node, want.Node)
				}
				waitActive(t, f, 0)
			}
		})
	}
}

// sameAffinities compares affinity lists, their expiry to within 10ms: it
// is wall time derived from the monotonic clock at each listing.
func sameAffinities(a, b []tables.Affinity) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		d := x.Expires.Sub(y.Expires)
		x.Expires, y.Expires = time.Time{}, time.Time{}
		if x != y || d < -10*time.Millisecond || d > 10*time.Millisecond {
			return false
		}
	}
	return true
}

// TestRouteRetryReason: a connection whose first target does not answer
// carries the failed dial in its CRT reason.
func TestRouteRetryReason(t *testing.T) {
	vln := listenVIPA(t)
	h, f, va := testHandler(t, vln)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().(*net.TCPAddr).AddrPort()
	dead.Close()
	_, live := backend(t, "b")
	setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: "a", Address: deadAddr, Ready: 1})
	setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: "b", Address: live, Ready: 1})
	for range 2 { // the rotation reaches a within two connections
		a := ask(t, f, va)
		c, node := connect(t, h, vln)
		defer c.Close()
		if node != "b" {
			t.Fatalf("reached %q", node)
		}
		if a.Node == "a" {
			if got, want := crtReason(t, f, c.LocalAddr()), "roundrobin; retry after dial to a failed"; got != want {
				t.Fatalf("CRT reason %q, want %q", got, want)
			}
			return
		}
	}
	t.Fatal("the rotation never chose the dead target")
}

func TestRouteQuery(t *testing.T) {
	for q, want := range map[string]string{
		"vipa=10.0.0.1&port=80&client=10.1.1.1":       "",
		"vipa=10.0.0.1&port=80&client=10.1.1.1:40000": "",
		"vipa=10.0.0.1&port=80&client=[::1]:1":        "",
		"port=80&client=10.1.1.1":                     `vipa ""`,
		"vipa=10.0.0.1&port=0&client=10.1.1.1":        `port "0"`,
		"vipa=10.0.0.1&port=80":                       `client ""`,
		"vipa=10.0.0.1&port=80&client=host:1":         `client "host:1"`,
	} {
		_, err := parseRouteQuery(httptest.NewRequest("GET", "/vipa/route?"+q, nil))
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", q, err, want)
		}
	}
	f := fleet.New()
	if _, err := answerRoute(f, routeQuery{vipa: netip.MustParseAddr("10.0.0.1"), port: 80}, time.Now()); err == nil ||
		!strings.Contains(err.Error(), "no VIPADISTRIBUTE definition") {
		t.Fatalf("unrouted VIPA: %v", err)
	}
}
