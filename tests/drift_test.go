//go:build linux

package tests

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// driftOf reads caddy_vipa_crt_drift of node's row from the routing node's
// metrics; ok is false while the row has none.
func driftOf(t *testing.T, admin, node string) (v int, ok bool) {
	for line := range strings.SplitSeq(getText(t, admin, "/metrics"), "\n") {
		if strings.HasPrefix(line, "caddy_vipa_crt_drift{") && strings.Contains(line, `node="`+node+`"`) {
			_, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			return v, err == nil
		}
	}
	return 0, false
}

// TestCRTDrift makes a target hold connections from the routing node's
// address that never went through the VIPA: the routing node's CRT does not
// know them, the drift metric shows the difference and the log says so.
// Connections through the VIPA alone show none.
func TestCRTDrift(t *testing.T) {
	t.Setenv("CADDY_VIPA_DRIFT_PERIOD", "200ms")
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = routingBlock(port)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, fmt.Sprintf("127.0.0.1:%d", gossip))
	pa := startCaddy(t, a.admin, a.caddyfile())
	startCaddy(t, b.admin, b.caddyfile())
	startApp(t, "caddy-b", reusePortListen(t, fmt.Sprintf("127.0.0.2:%d", port)))
	waitFor(t, 10*time.Second, "caddy-b's row", func() bool { return dptNodes(t, a.admin)["caddy-b"] == 1 })

	// Three connections through the VIPA: the CRT and the target agree.
	for range 3 {
		if _, _, name := dialVIPA(t, vipa); name != "caddy-b" {
			t.Fatalf("served by %s", name)
		}
	}
	waitFor(t, 5*time.Second, "zero drift with 3 relayed connections", func() bool {
		v, ok := driftOf(t, a.admin, "caddy-b")
		return ok && v == 0 && crtActive(t, a.admin, "caddy-b") == 3
	})

	// Two connections from the routing node's address straight to the
	// target's application: the target holds 5, the CRT knows 3.
	var direct []net.Conn
	for range 2 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 3 * time.Second}
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		direct = append(direct, c)
	}
	start := time.Now()
	waitFor(t, 5*time.Second, "drift -2", func() bool {
		v, ok := driftOf(t, a.admin, "caddy-b")
		return ok && v == -2
	})
	t.Logf("drift seen after %v", time.Since(start))
	waitFor(t, 5*time.Second, "the drift logged at warn", func() bool {
		for line := range strings.SplitSeq(pa.log.String(), "\n") {
			if strings.Contains(line, "CRT drift:") && strings.Contains(line, `"level":"warn"`) &&
				strings.Contains(line, `"crt_active":3`) && strings.Contains(line, `"target_held":5`) {
				return true
			}
		}
		return false
	})
	if n := strings.Count(pa.log.String(), "CRT drift:"); n != 1 {
		t.Errorf("drift logged %d times, want once per episode", n)
	}

	// The direct connections end: the drift goes back to zero.
	for _, c := range direct {
		c.Close()
	}
	waitFor(t, 5*time.Second, "zero drift again", func() bool {
		v, ok := driftOf(t, a.admin, "caddy-b")
		return ok && v == 0
	})
	waitFor(t, 5*time.Second, "the end of the drift logged", func() bool {
		return strings.Contains(pa.log.String(), "CRT drift ended")
	})
}

// crtActive is the active connections of node's row on the routing node.
func crtActive(t *testing.T, admin, node string) int {
	for _, r := range dpt(t, admin) {
		if r.Node == node {
			return r.ActiveConns
		}
	}
	return -1
}
