//go:build linux

package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

const labAdmin = netlab.Admin

// newLab makes a LAN of namespaces for the test, or skips it where this
// system cannot make them. It is removed after the nodes stop.
func newLab(t *testing.T, nodes ...string) *netlab.Lab {
	t.Helper()
	l, err := netlab.New(nodes...)
	if errors.Is(err, netlab.ErrUnavailable) {
		t.Skipf("end-to-end test in network namespaces: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	return l
}

// labNode is one Caddy of a lab, reached inside its namespace.
type labNode struct {
	*caddyProc
	host   *netlab.Host
	client *http.Client // to its admin endpoint
}

// startLabCaddy runs the real binary in h's namespace and waits for its
// admin endpoint.
func startLabCaddy(t *testing.T, h *netlab.Host, caddyfile string) *labNode {
	t.Helper()
	// ip netns exec execs Caddy: the process is Caddy's, signals reach it.
	p := launchCaddy(t, h.Name+"'s caddy", t.TempDir(), labAdmin, caddyfile, "ip", "netns", "exec", h.NS)
	n := &labNode{caddyProc: p, host: h, client: h.HTTPClient()}
	waitFor(t, 30*time.Second, h.Name+"'s admin endpoint", func() bool {
		_, err := harness.Get(n.client, labAdmin, "/config/")
		return err == nil
	})
	return n
}

func (n *labNode) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := harness.GetJSON(n.client, labAdmin, path, v); err != nil {
		t.Fatalf("%s: %v", n.host.Name, err)
	}
}

// post POSTs a JSON body to the admin endpoint and fails the test unless
// it answers 200.
func (n *labNode) post(t *testing.T, path, body string) {
	t.Helper()
	resp, err := n.client.Post("http://"+labAdmin+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s on %s: %d %s", path, n.host.Name, resp.StatusCode, out)
	}
}

// dptByNode is the node's /vipa/dpt by target node; nil while the admin
// endpoint does not answer.
func (n *labNode) dptByNode() map[string]dptRow {
	var rows []dptRow
	if err := harness.GetJSON(n.client, labAdmin, "/vipa/dpt", &rows); err != nil {
		return nil
	}
	out := map[string]dptRow{}
	for _, r := range rows {
		out[r.Node] = r
	}
	return out
}

// labApps starts an application on every node's LAN address and port.
func labApps(t *testing.T, l *netlab.Lab) {
	t.Helper()
	for _, h := range l.Nodes {
		ln, err := h.Listen("tcp", fmt.Sprintf("%s:%d", h.IP, netlab.Port))
		if err != nil {
			t.Fatal(err)
		}
		startApp(t, "caddy-"+h.Name, ln)
	}
}

// clientGreeting connects from the client namespace to the VIPA and
// returns the serving application's name.
func clientGreeting(l *netlab.Lab, timeout time.Duration) (string, error) {
	return clientGreetingAt(l, netlab.VIPA, timeout)
}

// clientGreetingAt is clientGreeting through the VIPA v.
func clientGreetingAt(l *netlab.Lab, v netip.Addr, timeout time.Duration) (string, error) {
	c, err := l.Client.DialTimeout("tcp", netip.AddrPortFrom(v, netlab.Port).String(), timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	name, ok := strings.CutPrefix(strings.TrimSpace(line), "hello from ")
	if !ok {
		return "", fmt.Errorf("unexpected greeting %q", line)
	}
	return name, nil
}

// clientNeigh is the client's neighbour entry's MAC for the VIPA.
func clientNeigh(t *testing.T, l *netlab.Lab) string {
	t.Helper()
	return clientNeighOf(t, l, netlab.VIPA)
}

// clientNeighOf is the client's neighbour entry's MAC for v ("ip neigh",
// or "ip -6 neigh" for an IPv6 VIPA).
func clientNeighOf(t *testing.T, l *netlab.Lab, v netip.Addr) string {
	t.Helper()
	mac, err := l.Client.Neigh(v.String())
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// waitLabFleet waits until every node sees every node alive.
func waitLabFleet(t *testing.T, nodes []*labNode) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, 20*time.Second, n.host.Name+" to see the whole fleet alive", func() bool {
			var rows []memberRow
			if err := harness.GetJSON(n.client, labAdmin, "/vipa/members", &rows); err != nil {
				return false
			}
			alive := 0
			for _, r := range rows {
				if r.Status == "alive" {
					alive++
				}
			}
			return alive == len(nodes)
		})
	}
}
