//go:build linux

package tests

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// caddyBin is the real Caddy binary built from ./cmd/caddy for these tests.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddy-vipa-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "../cmd/caddy")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cmd/caddy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// caddyProc is one running Caddy process.
type caddyProc struct {
	t      *testing.T
	dir    string
	admin  string
	config string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{} // closed when the process has been waited for
}

// startCaddy runs the real binary with a Caddyfile and waits for its admin
// endpoint.
func startCaddy(t *testing.T, admin, caddyfile string) *caddyProc {
	t.Helper()
	return startCaddyIn(t, t.TempDir(), admin, caddyfile)
}

// startCaddyVia is startCaddy through a wrapper command that execs Caddy
// (e.g. prlimit), so the process is Caddy's.
func startCaddyVia(t *testing.T, admin, caddyfile string, wrapper ...string) *caddyProc {
	t.Helper()
	return startCaddyIn(t, t.TempDir(), admin, caddyfile, wrapper...)
}

// startCaddyIn is startCaddy with dir as home and data directory, so a
// restarted process finds what the last one stored; wrapper, if any, execs
// Caddy.
func startCaddyIn(t *testing.T, dir, admin, caddyfile string, wrapper ...string) *caddyProc {
	t.Helper()
	p := launchCaddy(t, "caddy", dir, admin, caddyfile, wrapper...)
	waitFor(t, 10*time.Second, "admin endpoint "+admin, func() bool {
		resp, err := http.Get("http://" + admin + "/config/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return p
}

// launchCaddy starts the real binary with a Caddyfile and dir as home and
// data directory, through wrapper if any (a command that execs Caddy, so
// signals reach it). At cleanup it is stopped, and its log shown, named
// after who, if the test failed.
func launchCaddy(t *testing.T, who, dir, admin, caddyfile string, wrapper ...string) *caddyProc {
	t.Helper()
	p := &caddyProc{t: t, dir: dir, admin: admin, config: filepath.Join(dir, "Caddyfile"), log: new(syncBuffer)}
	if err := os.WriteFile(p.config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append(slices.Clone(wrapper), caddyBin, "run", "--config", p.config, "--adapter", "caddyfile")
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv("VIPA_LAB_LOGS") != "" {
			t.Logf("%s log:\n%s", who, p.log.String())
		}
	})
	return p
}

// stop ends the process gracefully, then forcibly.
func (p *caddyProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// reload runs `caddy reload` with a new Caddyfile.
func (p *caddyProc) reload(caddyfile string) {
	p.t.Helper()
	if err := os.WriteFile(p.config, []byte(caddyfile), 0o600); err != nil {
		p.t.Fatal(err)
	}
	out, err := exec.Command(caddyBin, "reload", "--config", p.config, "--adapter", "caddyfile", "--address", p.admin).CombinedOutput()
	if err != nil {
		p.t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

// reloadFails runs `caddy reload` and returns its output; it must fail.
func (p *caddyProc) reloadFails(caddyfile string) string {
	p.t.Helper()
	path := filepath.Join(p.dir, "Caddyfile.bad")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		p.t.Fatal(err)
	}
	out, err := exec.Command(caddyBin, "reload", "--config", path, "--adapter", "caddyfile", "--address", p.admin).CombinedOutput()
	if err == nil {
		p.t.Fatalf("caddy reload succeeded; want it refused:\n%s", out)
	}
	return string(out)
}

// getJSON fetches an admin route into v.
func getJSON(t *testing.T, admin, path string, v any) {
	t.Helper()
	if err := harness.GetJSON(http.DefaultClient, admin, path, v); err != nil {
		t.Fatal(err)
	}
}

type (
	dptRow = harness.DPTRow
	crtRow = harness.CRTRow
)

func getText(t *testing.T, admin, path string) string {
	t.Helper()
	body, err := harness.Get(http.DefaultClient, admin, path)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func dpt(t *testing.T, admin string) []dptRow {
	var rows []dptRow
	getJSON(t, admin, "/vipa/dpt", &rows)
	return rows
}

func crt(t *testing.T, admin, query string) []crtRow {
	var rows []crtRow
	getJSON(t, admin, "/vipa/crt"+query, &rows)
	return rows
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a TCP port free on every 127.0.0.x this test uses.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if tcpFreeOn(port, "127.0.0.2", "127.0.0.3", "127.0.0.100") {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// tcpFreeOn reports whether port can be listened on, TCP, on every one of
// ips.
func tcpFreeOn(port int, ips ...string) bool {
	for _, ip := range ips {
		l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// reusePortListen opens a listening socket with SO_REUSEPORT, as
// application instances sharing a port do.
func reusePortListen(t *testing.T, addr string) net.Listener {
	t.Helper()
	return reusePortListenNet(t, "tcp", addr)
}

// reusePortListenNet is reusePortListen on network: "tcp4" makes 0.0.0.0 an
// IPv4 socket, where "tcp" listens on :: for both families.
func reusePortListenNet(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// adminAddr picks a free admin endpoint address.
func adminAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
