//go:build linux

package vipaif

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// link is a node namespace and a client namespace joined by a veth pair,
// made and removed by the test.
type link struct {
	node, client       string // namespace names
	nodeIf, clientIf   string
	nodeMAC, clientMAC string
}

var nsSeq atomic.Int32

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nsID skips the test where this system cannot make network namespaces
// (not root, no ip command) and gives its namespaces' names a suffix of
// their own.
func nsID(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CI runs as root): skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2) to make network namespaces: skipped")
	}
	return fmt.Sprintf("%d%d", os.Getpid()%100000, nsSeq.Add(1))
}

// newLink makes the namespaces, or skips the test where this system
// cannot (not root, no ip command, no namespaces).
func newLink(t *testing.T) *link {
	t.Helper()
	id := nsID(t)
	l := &link{node: "vipaif-n" + id, client: "vipaif-c" + id, nodeIf: "vn" + id, clientIf: "vc" + id}
	if err := ipCmd("netns", "add", l.node); err != nil {
		t.Skipf("cannot make a network namespace here: %v", err)
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", l.node) })
	if err := ipCmd("netns", "add", l.client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", l.client) })
	steps := [][]string{
		{"-n", l.node, "link", "add", l.nodeIf, "type", "veth", "peer", "name", l.clientIf, "netns", l.client},
		{"-n", l.node, "addr", "add", "192.0.2.1/24", "dev", l.nodeIf},
		{"-n", l.client, "addr", "add", "192.0.2.2/24", "dev", l.clientIf},
		{"-n", l.node, "link", "set", l.nodeIf, "up"},
		{"-n", l.client, "link", "set", l.clientIf, "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	l.nodeMAC = l.mac(t, l.node, l.nodeIf)
	l.clientMAC = l.mac(t, l.client, l.clientIf)
	return l
}

func (l *link) mac(t *testing.T, ns, dev string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "link", "show", dev).Output()
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("ip link show %s: %s", dev, out)
	}
	return rows[0].Address
}

// in runs f on an OS thread inside namespace ns; the thread is discarded
// afterwards, so no other goroutine ever runs there.
func in(t *testing.T, ns string, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		defer func() { done <- nil }()
		f()
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter namespace %s: %v", ns, err)
	}
}

// manager is a Manager of the node's interface, made in the node's
// namespace and closed there at cleanup.
func (l *link) manager(t *testing.T) *Manager {
	t.Helper()
	var m *Manager
	var err error
	in(t, l.node, func() { m, err = New(l.nodeIf) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in(t, l.node, func() { _ = m.Close() }) })
	return m
}

// do runs op in the node's namespace; an error fails the test.
func (l *link) do(t *testing.T, op func() error) {
	t.Helper()
	var err error
	in(t, l.node, func() { err = op() })
	if err != nil {
		t.Fatal(err)
	}
}

// addrs lists the node interface's addresses as "ip/len".
func (l *link) addrs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", l.node, "-j", "addr", "show", "dev", l.nodeIf).Output()
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, r := range rows {
		for _, a := range r.AddrInfo {
			list = append(list, fmt.Sprintf("%s/%d", a.Local, a.Prefixlen))
		}
	}
	return list
}

func (l *link) has(t *testing.T, prefix string) bool {
	for _, a := range l.addrs(t) {
		if a == prefix {
			return true
		}
	}
	return false
}

// neigh is the client's neighbour entry's MAC for ip ("" when none).
func (l *link) neigh(t *testing.T, ip string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", l.client, "-j", "neigh", "show", ip, "dev", l.clientIf).Output()
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Lladdr string `json:"lladdr"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		return ""
	}
	return rows[0].Lladdr
}

// staleNeigh gives the client an entry for ip that points elsewhere, as
// after talking to the VIPA's previous owner.
func (l *link) staleNeigh(t *testing.T, ip string) {
	t.Helper()
	if err := ipCmd("-n", l.client, "neigh", "replace", ip, "lladdr", "02:00:5e:00:00:01", "dev", l.clientIf, "nud", "stale"); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFromClient connects from the client namespace.
func dialFromClient(t *testing.T, l *link, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	in(t, l.client, func() { c, err = net.DialTimeout("tcp", addr, 2*time.Second) })
	return c, err
}
