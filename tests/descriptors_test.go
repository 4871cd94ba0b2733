//go:build linux

package tests

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fdLimit is the routing node's descriptor limit, soft and hard (Go raises
// the soft limit to the hard one at start).
const fdLimit = 256

// TestDescriptorExhaustion runs the routing node under a 256-descriptor
// limit and holds more clients through the VIPA than that allows. Clients
// arriving while it has no descriptor left are closed at once (not left in
// the backlog), counted and logged once; when the held clients close, the
// VIPA serves again. caddy-l4's own accept loop ends at its first EMFILE.
func TestDescriptorExhaustion(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) sets Caddy's descriptor limit: %v", err)
	}
	admin := adminAddr(t)
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	limit := fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit)
	p := startCaddyVia(t, admin, singleNodeCaddyfile(admin, gossip, port, ""), "prlimit", limit, "--")
	pid := p.cmd.Process.Pid
	if soft, hard := fdLimits(t, pid); soft != fdLimit || hard != fdLimit {
		t.Fatalf("Caddy's descriptor limit is %d:%d, want %d:%d", soft, hard, fdLimit, fdLimit)
	}
	startApp(t, "app-1", reusePortListen(t, fmt.Sprintf("127.0.0.1:%d", port)))
	waitFor(t, 3*time.Second, "a DPT row with ready=1", func() bool {
		rows := dpt(t, admin)
		return len(rows) == 1 && rows[0].Ready == 1
	})
	baseline, baselineKinds := openFDs(t, pid), fdKinds(t, pid)
	ex := &exhauster{t: t, pid: pid, vipa: vipa, admin: admin}
	defer ex.release()

	// More clients at once than Caddy has descriptors for: each is served
	// or closed at once, none waits.
	served, closed, hung := ex.burst(300)
	t.Logf("burst of 300: %d served, %d closed, %d left waiting; Caddy holds %d descriptors", served, closed, hung, openFDs(t, pid))
	if hung != 0 || served == 0 || closed == 0 {
		t.Fatalf("burst of 300 clients: %d served, %d closed, %d left waiting; want none waiting", served, closed, hung)
	}

	// Clients arriving while Caddy has no descriptor at all are closed at
	// once, and only one line is logged for all of them.
	const probes = 10
	logged := strings.Count(p.log.String(), "VIPA listener out of descriptors")
	for i := range probes {
		ex.fill()
		start := time.Now()
		c, err := net.DialTimeout("tcp", vipa, time.Second)
		if err != nil {
			continue // refused outright is fine too
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(make([]byte, 64))
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("client %d arriving with %d descriptors open (%s) was left waiting 3s", i, openFDs(t, pid), fdKinds(t, pid))
		}
		// Closed, not queued: a refusal that lost its room to another
		// thread waits out the accept backoff (up to 1 s), and a loaded
		// machine adds to that; left waiting is the 3 s case above.
		if n != 0 || err == nil || time.Since(start) > 2500*time.Millisecond {
			t.Fatalf("client %d arriving with no descriptor left: read %d bytes, %v after %s; want closed at once", i, n, err, time.Since(start))
		}
	}
	if got := strings.Count(p.log.String(), "VIPA listener out of descriptors") - logged; got > 1 {
		t.Errorf("%d clients refused for want of descriptors logged %d lines; want at most 1", probes, got)
	}

	// Every client closes: the VIPA serves again.
	ex.release()
	waitFor(t, 10*time.Second, "an empty CRT", func() bool { return len(crt(t, admin, "")) == 0 })
	for i := range 20 {
		c, err := net.DialTimeout("tcp", vipa, time.Second)
		if err != nil {
			t.Fatalf("new client %d after the held ones closed: %v", i, err)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != "hello from app-1\n" {
			t.Fatalf("new client %d after the held ones closed: %q, %v; the VIPA no longer serves", i, line, err)
		}
	}
	// Back near the start: the relay's pollers and the admin API's
	// keep-alive connections are opened on first use.
	waitFor(t, 10*time.Second, "Caddy's descriptors back near "+baselineKinds, func() bool { return openFDs(t, pid) <= baseline+16 })

	// Counted, and logged once with the fix.
	metrics := getText(t, admin, "/metrics")
	// caddy-l4's loop, while it lives, may take a client first and close
	// it when the dial of a target finds no descriptor (no_answer).
	refusedDescriptors := metricValue(t, metrics, `caddy_vipa_refused_connections_total{reason="descriptors"}`)
	t.Logf("refused: %d for want of descriptors, %d without a target answering", refusedDescriptors,
		metricValue(t, metrics, `caddy_vipa_refused_connections_total{reason="no_answer"}`))
	if refusedDescriptors < 1 {
		t.Errorf("no client counted as refused for want of descriptors\n%s", metrics)
	}
	if got := metricValue(t, metrics, `caddy_vipa_accept_errors_total{reason="descriptors"}`); got < 1 {
		t.Errorf("accept errors for want of descriptors: %d", got)
	}
	log := p.log.String()
	if n := strings.Count(log, "VIPA listener out of descriptors"); n < 1 || n > 2 {
		t.Errorf("the exhaustion was logged %d times; want once per episode (burst, probes)", n)
	}
	if !strings.Contains(log, "LimitNOFILE") {
		t.Error("the log does not say how to raise the limit")
	}

	// After a quiet while, the end of the episode is logged with its count.
	time.Sleep(5 * time.Second)
	c, _, _ := dialVIPA(t, vipa)
	c.Close()
	waitFor(t, 3*time.Second, "the end of the episode in the log", func() bool {
		return contains(p.log.String(), "VIPA listener accepts again")
	})
}

// TestReloadLeavesNoStaleSocket reloads the routing node: the shadow accept
// loop moves to the new config's socket, and the old socket, which it held
// a duplicate of, is gone from the kernel (else it would stay in the
// SO_REUSEPORT group and take its share of the clients).
func TestReloadLeavesNoStaleSocket(t *testing.T) {
	admin := adminAddr(t)
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	p := startCaddy(t, admin, singleNodeCaddyfile(admin, gossip, port, ""))
	pid := p.cmd.Process.Pid
	startApp(t, "app-1", reusePortListen(t, fmt.Sprintf("127.0.0.1:%d", port)))
	waitFor(t, 3*time.Second, "a DPT row with ready=1", func() bool { return len(dpt(t, admin)) == 1 })

	// One listening socket on the VIPA, open three times in Caddy: the
	// layer4 app's descriptor and the shadow loop's two (its listener's and
	// the file it waits on).
	shadowed := func(when string) uint64 {
		t.Helper()
		var ino uint64
		waitFor(t, 5*time.Second, when+": one socket listening on the VIPA, shadowed", func() bool {
			inodes := listeningInodes(t, "127.0.0.100", port)
			if len(inodes) != 1 {
				return false
			}
			ino = inodes[0]
			return socketFDs(t, pid, ino) == 3
		})
		return ino
	}
	first := shadowed("at start")
	for i := range 3 {
		p.reload(singleNodeCaddyfile(admin, gossip, port, fmt.Sprintf("vipadistribute define 127.0.0.101 port %d destip all", port+1+i)))
		ino := shadowed(fmt.Sprintf("after reload %d", i+1))
		if ino == first {
			t.Fatalf("reload %d kept socket %d", i+1, ino)
		}
		first = ino
		for range 10 {
			c, r, _ := dialVIPA(t, vipa)
			echo(t, c, r, "after reload")
			c.Close()
		}
	}
}

// exhauster brings a Caddy process to its descriptor limit with clients
// held through the VIPA.
type exhauster struct {
	t           *testing.T
	pid         int
	vipa, admin string
	mu          sync.Mutex
	held        []net.Conn
}

func (ex *exhauster) hold(c net.Conn) {
	ex.mu.Lock()
	ex.held = append(ex.held, c)
	ex.mu.Unlock()
}

func (ex *exhauster) release() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for _, c := range ex.held {
		c.Close()
	}
	ex.held = nil
}

// burst connects n clients at once; served ones are held.
func (ex *exhauster) burst(n int) (served, closed, hung int) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcome := ex.client(5 * time.Second)
			mu.Lock()
			defer mu.Unlock()
			switch outcome {
			case "served":
				served++
			case "closed":
				closed++
			default:
				hung++
			}
		}()
	}
	wg.Wait()
	return served, closed, hung
}

// client connects through the VIPA and waits up to d for the greeting:
// "served" (held), "closed" or "waiting".
func (ex *exhauster) client(d time.Duration) string {
	c, err := net.DialTimeout("tcp", ex.vipa, d)
	if err != nil {
		return "closed"
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && strings.HasPrefix(line, "hello from") {
		_ = c.SetReadDeadline(time.Time{})
		ex.hold(c)
		return "served"
	}
	c.Close()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "waiting"
	}
	return "closed"
}

// fill takes Caddy's last descriptors: held clients through the VIPA (two
// each, three while the relay starts), then idle admin connections (one
// each), until every descriptor number below the limit is open and stays so.
func (ex *exhauster) fill() {
	ex.t.Helper()
	for range 200 {
		// Settled first: a refusal may have cost Caddy its reserve
		// descriptor for a moment (it takes it again within 100 ms).
		open := openFDs(ex.t, ex.pid)
		time.Sleep(150 * time.Millisecond)
		if openFDs(ex.t, ex.pid) != open {
			continue
		}
		switch {
		case open >= fdLimit:
			return
		case open >= fdLimit-2: // a relayed client needs a third for a moment
			c, err := net.DialTimeout("tcp", ex.admin, time.Second)
			if err != nil {
				ex.t.Fatalf("holding an admin connection: %v", err)
			}
			ex.hold(c)
			for deadline := time.Now().Add(2 * time.Second); openFDs(ex.t, ex.pid) == open && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		default:
			if got := ex.client(3 * time.Second); got == "waiting" {
				ex.t.Fatalf("a client with %d of %d descriptors open was left waiting", open, fdLimit)
			}
		}
	}
	ex.t.Fatalf("Caddy does not reach its descriptor limit: %d open", openFDs(ex.t, ex.pid))
}

// fdLimits reads a process's descriptor limits.
func fdLimits(t *testing.T, pid int) (soft, hard int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if _, err := fmt.Sscan(rest, &soft, &hard); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
	}
	return soft, hard
}

// openFDs counts a process's open descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fdKinds sums up a process's descriptors by kind.
func fdKinds(t *testing.T, pid int) string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range ents {
		link, _ := os.Readlink(dir + "/" + e.Name())
		kind, _, _ := strings.Cut(link, ":")
		kinds[kind]++
	}
	return fmt.Sprint(kinds)
}

// socketFDs counts a process's descriptors of the socket with inode ino.
func socketFDs(t *testing.T, pid int, ino uint64) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("socket:[%d]", ino)
	n := 0
	for _, e := range ents {
		if link, err := os.Readlink(dir + "/" + e.Name()); err == nil && link == want {
			n++
		}
	}
	return n
}

// listeningInodes lists the inodes of the TCP sockets listening at ip:port
// (IPv4), from the kernel's socket table.
func listeningInodes(t *testing.T, ip string, port int) []uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	a := net.ParseIP(ip).To4()
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], port)
	var inodes []uint64
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[1] != local || f[3] != "0A" {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			t.Fatalf("/proc/net/tcp line %q: %v", line, err)
		}
		inodes = append(inodes, ino)
	}
	return inodes
}

// metricValue reads one series' value from a metrics page (0 if absent).
func metricValue(t *testing.T, page, series string) int {
	t.Helper()
	i := strings.Index(page, series+" ")
	if i < 0 {
		return 0
	}
	var v float64
	if _, err := fmt.Sscan(page[i+len(series)+1:], &v); err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return int(v)
}
