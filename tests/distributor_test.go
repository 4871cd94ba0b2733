//go:build linux

package tests

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// family is the addresses of a single-node test in one address family.
type family struct {
	advertise string // the node's own address: gossip, and where its applications listen
	vipa      string
	vipa2     string // defined by a reload
	other     string // a local address that is neither: its listeners never count
	// wildcard4 says whether a 0.0.0.0 listener counts for advertise (a
	// dual-stack :: one always does: it takes both families).
	wildcard4 bool
}

var ipv4 = family{advertise: "127.0.0.1", vipa: "127.0.0.100", vipa2: "127.0.0.101", other: "127.0.0.3", wildcard4: true}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

func singleNodeCaddyfile(admin string, gossip, port int, extra string) string {
	return singleNodeConfig(ipv4, admin, gossip, port, extra)
}

func singleNodeConfig(f family, admin string, gossip, port int, extra string) string {
	return fmt.Sprintf(`{
	admin %s
	vipadynamic {
		node caddy-a
		advertise %s
		gossip %s {
			profile fast
		}
		listeners auto {
			interval 50ms
		}
		vipadistribute define %s port %d destip all
		%s
	}
	layer4 {
		%s {
			route {
				distribute {
					dial_timeout 1s
				}
			}
		}
	}
}
`, admin, f.advertise, hostPort(f.advertise, gossip), f.vipa, port, extra, hostPort(f.vipa, port))
}

// TestSingleNode walks the routing node through its life with the real
// binary: listen → DPT row, connect → CRT entry, close → released,
// SO_REUSEPORT → ready 2, which wildcard listeners count, stop listening →
// row gone and clients refused, half-close, and a reload that keeps an
// open connection.
func TestSingleNode(t *testing.T) {
	testSingleNode(t, ipv4, freePort(t), freePort(t), freePort(t))
}

// TestSingleNodeIPv6 is TestSingleNode with an IPv6 VIPA, target and
// gossip: advertise ::1 and addresses the test adds to lo.
func TestSingleNodeIPv6(t *testing.T) {
	n := fmt.Sprintf("fd00:78:%x::", 1+mrand.IntN(0xfff0))
	f := family{advertise: "::1", vipa: n + "100", vipa2: n + "101", other: n + "3"}
	addLoopback6(t, f.vipa, f.vipa2, f.other)
	all := []string{"127.0.0.1", "[::1]", "[" + f.vipa + "]", "[" + f.vipa2 + "]", "[" + f.other + "]"}
	testSingleNode(t, f, freePortOn(t, all...), freePortOn(t, all...), freePortOn(t, all...))
}

func testSingleNode(t *testing.T, f family, port, gossip, port2 int) {
	admin := adminAddr(t)
	vipa := hostPort(f.vipa, port)
	p := startCaddy(t, admin, singleNodeConfig(f, admin, gossip, port, ""))

	// An application listening on advertise:port becomes a DPT row.
	a1 := startApp(t, "app-1", reusePortListen(t, hostPort(f.advertise, port)))
	waitFor(t, 10*time.Second, "a DPT row with ready=1", func() bool {
		rows := dpt(t, admin)
		return len(rows) == 1 && rows[0].Ready == 1
	})
	row := dpt(t, admin)[0]
	if row.VIPA != f.vipa || row.Port != port || row.Node != "caddy-a" ||
		row.Address != hostPort(f.advertise, port) || row.State != "active" || row.Weight != 1 {
		t.Fatalf("DPT row %+v", row)
	}

	// A client through the VIPA reaches the application.
	c, r, name := dialVIPA(t, vipa)
	if name != "app-1" {
		t.Fatalf("served by %q", name)
	}
	echo(t, c, r, "ping")

	// The CRT shows the open connection with its byte counts (a count is
	// added after its bytes are written, so the client may be first).
	var rows []crtRow
	waitFor(t, 10*time.Second, "the CRT entry's byte counts", func() bool {
		rows = crt(t, admin, "")
		if len(rows) != 1 {
			t.Fatalf("CRT has %d entries, want 1: %+v", len(rows), rows)
		}
		return rows[0].BytesToTarget == int64(len("ping\n")) && rows[0].BytesToClient == int64(len("hello from app-1\nping\n"))
	})
	e := rows[0]
	if e.Client != c.LocalAddr().String() || e.VIPA != f.vipa || e.Port != port ||
		e.Node != "caddy-a" || e.Address != row.Address {
		t.Fatalf("CRT entry %+v; client %s", e, c.LocalAddr())
	}
	if since, err := time.Parse(time.RFC3339, e.Since); err != nil || time.Since(since) > time.Minute {
		t.Fatalf("since %q: %v", e.Since, err)
	}
	if e.BytesToTarget != int64(len("ping\n")) || e.BytesToClient != int64(len("hello from app-1\nping\n")) {
		t.Fatalf("CRT bytes to target %d, to client %d", e.BytesToTarget, e.BytesToClient)
	}
	if got := crt(t, admin, "?node=caddy-b"); len(got) != 0 {
		t.Fatalf("node filter: %+v", got)
	}
	if got := crt(t, admin, fmt.Sprintf("?vipa=%s&port=%d&limit=1", f.vipa, port)); len(got) != 1 {
		t.Fatalf("vipa/port filter: %+v", got)
	}
	// A filter that does not parse is refused, never read as no filter.
	for _, q := range []string{"?vipa=%zz", "?vipa=nowhere", "?port=x"} {
		resp, err := http.Get("http://" + admin + "/vipa/crt" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("/vipa/crt%s: status %d, want 400", q, resp.StatusCode)
		}
	}
	if dpt(t, admin)[0].ActiveConns != 1 {
		t.Fatalf("active_conns: %+v", dpt(t, admin))
	}

	// Closing the client releases the entry.
	c.Close()
	waitFor(t, 10*time.Second, "an empty CRT", func() bool { return len(crt(t, admin, "")) == 0 })
	if row := dpt(t, admin)[0]; row.ActiveConns != 0 || row.TotalConns != 1 {
		t.Fatalf("counts after close: %+v", row)
	}
	// The target's byte totals take the ended connection's counts (the
	// application's "bye" may still have reached the client).
	metrics := getText(t, admin, "/metrics")
	for dir, n := range map[string]int64{"to_target": e.BytesToTarget, "to_client": e.BytesToClient} {
		series := fmt.Sprintf(`caddy_vipa_target_bytes_total{direction="%s",node="caddy-a",port="%d",role="routing",vipa="%s"} `, dir, port, f.vipa)
		var got int64
		if i := strings.Index(metrics, series); i < 0 {
			t.Errorf("metrics lack %q", series)
		} else if _, err := fmt.Sscan(metrics[i+len(series):], &got); err != nil || got < n || got > n+int64(len("bye\n")) {
			t.Errorf("%s%d (%v), want the connection's %d", series, got, err, n)
		}
	}

	// Half-close: the client sends 1 MiB, shuts its write side, and still
	// receives every echoed byte and the goodbye.
	halfClose(t, vipa)

	// A listener on another address (not advertise, not wildcard) never
	// counts: it listens before a second SO_REUSEPORT instance, so the
	// scan that sees the second sees it too, and ready goes to 2, never 3.
	other := startApp(t, "other", reusePortListen(t, hostPort(f.other, port)))
	a2 := startApp(t, "app-2", reusePortListen(t, hostPort(f.advertise, port)))
	waitFor(t, 10*time.Second, "ready=2", func() bool {
		rows := dpt(t, admin)
		if len(rows) != 1 || rows[0].Ready > 2 {
			t.Fatalf("a listener on %s changed the DPT: %+v", f.other, rows)
		}
		return rows[0].Ready == 2
	})
	other.stop()

	// Open a connection to keep across the reload.
	kept, keptR, _ := dialVIPA(t, vipa)
	echo(t, kept, keptR, "before reload")

	// A reload keeps the agent, the DPT and the CRT: the open connection
	// still works and is still in the CRT.
	// The reload installs the definitions at once and the agent's worker
	// shows them on its next round (kicked, no timer); the bound is the
	// fleet tests' for a -race build on a loaded host, where the two
	// processes' goroutines can be starved for seconds.
	reloaded := time.Now()
	p.reload(singleNodeConfig(f, admin, gossip, port, fmt.Sprintf("vipadistribute define %s port %d destip all", f.vipa2, port2)))
	waitFor(t, 30*time.Second, "the reloaded definitions", func() bool {
		var defs []map[string]any
		getJSON(t, admin, "/vipa/definitions", &defs)
		return len(defs) == 2
	})
	t.Logf("reload and its definitions: %v", time.Since(reloaded).Round(time.Millisecond))
	echo(t, kept, keptR, "after reload")
	if rows := crt(t, admin, ""); len(rows) != 1 || rows[0].Client != kept.LocalAddr().String() {
		t.Fatalf("CRT after reload: %+v", rows)
	}

	// Wildcard listeners on the reload's port: :: counts for either
	// family's advertise address, 0.0.0.0 only for an IPv4 one. A scan
	// reads the IPv4 sockets before the IPv6 ones, so one may see only
	// the second listener: the row may show fewer for a moment, never
	// more.
	w4 := startApp(t, "wildcard-4", reusePortListenNet(t, "tcp4", hostPort("0.0.0.0", port2)))
	w6 := startApp(t, "wildcard-6", reusePortListen(t, hostPort("::", port2)))
	want := 1
	if f.wildcard4 {
		want = 2
	}
	wildRow := func() (dptRow, bool) {
		for _, r := range dpt(t, admin) {
			if r.VIPA == f.vipa2 && r.Port == port2 {
				if r.Ready > want || r.Address != hostPort(f.advertise, port2) {
					t.Fatalf("wildcard listeners 0.0.0.0 and :: on %d: row %+v, want ready %d at %s", port2, r, want, hostPort(f.advertise, port2))
				}
				return r, true
			}
		}
		return dptRow{}, false
	}
	waitFor(t, 10*time.Second, fmt.Sprintf("the wildcard listeners' row with ready %d", want), func() bool {
		r, ok := wildRow()
		return ok && r.Ready == want
	})
	time.Sleep(300 * time.Millisecond) // several scans at 50 ms
	wildRow()
	w4.stop()
	w6.stop()
	waitFor(t, 10*time.Second, "the wildcard row to go", func() bool {
		_, ok := wildRow()
		return !ok
	})

	// A reload that changes the node name needs a restart: it is refused,
	// and the running config (tables, admin API, connection) goes on.
	bad := strings.Replace(singleNodeConfig(f, admin, gossip, port, ""), "node caddy-a", "node caddy-z", 1)
	if out := p.reloadFails(bad); !contains(out, "restart required") {
		t.Fatalf("refused reload says:\n%s", out)
	}
	echo(t, kept, keptR, "after a refused reload")
	if rows := dpt(t, admin); len(rows) != 1 || rows[0].Node != "caddy-a" {
		t.Fatalf("DPT after a refused reload: %+v", rows)
	}
	if rows := crt(t, admin, ""); len(rows) != 1 {
		t.Fatalf("CRT after a refused reload: %+v", rows)
	}
	kept.Close()
	waitFor(t, 10*time.Second, "an empty CRT after reload", func() bool { return len(crt(t, admin, "")) == 0 })

	// Every application stops listening: the row goes, and a new client is
	// closed at once.
	a1.stopListening()
	a2.stopListening()
	waitFor(t, 10*time.Second, "the row to go", func() bool { return len(dpt(t, admin)) == 0 })
	refused(t, vipa)
	waitFor(t, 10*time.Second, "the refusal in the log", func() bool {
		return contains(p.log.String(), "no target has an application listening on this port")
	})

	// The metrics count the refusal and the routed connections.
	metrics = getText(t, admin, "/metrics")
	for _, want := range []string{
		`caddy_vipa_refused_connections_total{reason="no_target"} 1`,
		`caddy_vipa_crt_entries 0`,
		`caddy_vipa_members{status="alive"} 1`,
	} {
		if !contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// halfClose checks that a client that shuts its write side gets the whole reply.
func halfClose(t *testing.T, vipa string) {
	t.Helper()
	c, r, _ := dialVIPA(t, vipa)
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	go func() {
		_, _ = c.Write(payload)
		_ = c.CloseWrite()
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("half-close read: %v", err)
	}
	want := append(append([]byte{}, payload...), "bye\n"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("half-close: got %d bytes (sha %x), want %d (sha %x)", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
	c.Close()
}

// refused checks a new connection to vipa is closed promptly without data.
func refused(t *testing.T, vipa string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", vipa, time.Second)
	if err != nil {
		return // refused outright is fine too
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(make([]byte, 16))
	if n != 0 || err == nil {
		t.Fatalf("expected the connection closed, read %d bytes, %v", n, err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection was not closed within 2s")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("closed after %s", d)
	}
}

// TestProbeListeners runs the routing node with `listeners probe`: it finds
// applications by connecting to its advertise address, so two SO_REUSEPORT
// instances count as one (the socket table would say 2), and a listener the
// probe cannot reach never counts.
func TestProbeListeners(t *testing.T) {
	admin := adminAddr(t)
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	cfg := strings.Replace(singleNodeCaddyfile(admin, gossip, port, ""), "listeners auto", "listeners probe", 1)
	startCaddy(t, admin, cfg)

	other := startApp(t, "other", reusePortListen(t, fmt.Sprintf("127.0.0.3:%d", port)))
	defer other.stop()
	a1 := startApp(t, "app-1", reusePortListen(t, fmt.Sprintf("127.0.0.1:%d", port)))
	a2 := startApp(t, "app-2", reusePortListen(t, fmt.Sprintf("127.0.0.1:%d", port)))
	waitFor(t, 3*time.Second, "a DPT row", func() bool { return len(dpt(t, admin)) == 1 })
	time.Sleep(200 * time.Millisecond) // several probes
	rows := dpt(t, admin)
	if len(rows) != 1 || rows[0].Ready != 1 || rows[0].Address != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("DPT %+v, want one row, ready=1, at 127.0.0.1:%d", rows, port)
	}

	c, r, name := dialVIPA(t, vipa)
	if name != "app-1" && name != "app-2" {
		t.Fatalf("served by %q", name)
	}
	echo(t, c, r, "probed")
	c.Close()

	a1.stopListening()
	a2.stopListening()
	waitFor(t, 3*time.Second, "the row to go", func() bool { return len(dpt(t, admin)) == 0 })
	refused(t, vipa)
}

// TestLayer4OnAdvertiseAddress: a layer4 server that also listens on the
// advertise address makes the listener watch count Caddy's own socket as an
// application. A client of the VIPA is routed there once, arrives on that
// address, and is not routed back again: it is closed, with the reason in
// the log, instead of looping until descriptors run out.
func TestLayer4OnAdvertiseAddress(t *testing.T) {
	admin := adminAddr(t)
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	cfg := strings.Replace(singleNodeCaddyfile(admin, gossip, port, ""),
		fmt.Sprintf("127.0.0.100:%d {\n\t\t\troute {\n\t\t\t\tdistribute {", port),
		fmt.Sprintf("127.0.0.100:%d 127.0.0.1:%d {\n\t\t\troute {\n\t\t\t\tdistribute 127.0.0.100 {", port, port), 1)
	if !strings.Contains(cfg, "127.0.0.1:"+fmt.Sprint(port)+" {") {
		t.Fatalf("config not rewritten:\n%s", cfg)
	}
	p := startCaddy(t, admin, cfg)
	waitFor(t, 3*time.Second, "Caddy's own socket as a DPT row", func() bool { return len(dpt(t, admin)) == 1 })

	refused(t, vipa)
	waitFor(t, 3*time.Second, "the reason in the log", func() bool {
		return contains(p.log.String(), "the only target is this listener itself")
	})
	waitFor(t, 3*time.Second, "an empty CRT", func() bool { return len(crt(t, admin, "")) == 0 })
	if rows := dpt(t, admin); rows[0].TotalConns != 1 {
		t.Fatalf("the row took %d connections, want 1 (no loop): %+v", rows[0].TotalConns, rows[0])
	}
}
