//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// vipa is the distributed address of every scenario; each scenario picks
// its own ports, so runs beside other tests do not meet.
const vipa = "127.0.0.100"

// nodeConf is one Caddy node's config: a member of the fleet, and the
// routing node of the VIPA when it defines ports.
type nodeConf struct {
	name, ip string
	gossip   int      // gossip port on ip
	join     []string // ip:port of members to join at start
	key      string   // base64 fleet key
	profile  string   // "" for lan, the default
	ports    []int    // distributed ports: this node routes the VIPA
	destip   string   // default "all"
	dial     string   // distribute's dial_timeout; "" for the default
	defs     string   // more vipadistribute lines, verbatim
}

// node is one Caddy process; it can be killed and started again.
type node struct {
	nodeConf
	admin  string
	dir    string
	nofile uint64 // RLIMIT_NOFILE soft and hard for Caddy; 0: inherited
	proc   *harness.Process
	http   *http.Client
}

func (n *node) caddyfile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n\tvipadynamic {\n", n.admin)
	fmt.Fprintf(&b, "\t\tnode %s\n\t\tadvertise %s\n\t\tgossip %s:%d {\n", n.name, n.ip, n.ip, n.gossip)
	if len(n.join) > 0 {
		fmt.Fprintf(&b, "\t\t\tjoin %s\n", strings.Join(n.join, " "))
	}
	if n.key != "" {
		fmt.Fprintf(&b, "\t\t\tencrypt_key %s\n", n.key)
	}
	if n.profile != "" {
		fmt.Fprintf(&b, "\t\t\tprofile %s\n", n.profile)
	}
	b.WriteString("\t\t}\n")
	destip := n.destip
	if destip == "" {
		destip = "all"
	}
	var listen []string
	if len(n.ports) > 0 {
		ps := make([]string, len(n.ports))
		for i, p := range n.ports {
			ps[i] = strconv.Itoa(p)
			listen = append(listen, net.JoinHostPort(vipa, ps[i]))
		}
		fmt.Fprintf(&b, "\t\tvipadistribute define %s port %s destip %s\n", vipa, strings.Join(ps, " "), destip)
	}
	b.WriteString(n.defs)
	b.WriteString("\t}\n")
	if len(listen) > 0 {
		fmt.Fprintf(&b, "\tlayer4 {\n\t\t%s {\n\t\t\troute {\n\t\t\t\tdistribute {\n", strings.Join(listen, " "))
		if n.dial != "" {
			fmt.Fprintf(&b, "\t\t\t\t\tdial_timeout %s\n", n.dial)
		}
		b.WriteString("\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func (n *node) config() string { return filepath.Join(n.dir, "Caddyfile") }
func (n *node) log() string    { return filepath.Join(n.dir, "caddy.log") }

// newNode prepares a node with its own admin port and directory.
func (e *env) newNode(c nodeConf) (*node, error) {
	admin, err := e.pp.Pick("127.0.0.1")
	if err != nil {
		return nil, err
	}
	n := &node{nodeConf: c, admin: fmt.Sprintf("127.0.0.1:%d", admin), dir: filepath.Join(e.dir, e.scenario, c.name)}
	n.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, err
	}
	e.nodes = append(e.nodes, n)
	return n, nil
}

// start runs the node's Caddy and waits for its admin endpoint.
func (n *node) start(ctx context.Context, bin string) error {
	if err := os.WriteFile(n.config(), []byte(n.caddyfile()), 0o600); err != nil {
		return err
	}
	env := []string{"HOME=" + n.dir, "XDG_CONFIG_HOME=" + n.dir, "XDG_DATA_HOME=" + n.dir}
	start := func(c *exec.Cmd) error {
		if err := c.Start(); err != nil {
			return err
		}
		if n.nofile == 0 {
			return nil
		}
		// Soft and hard, so Go's start-up raise of the soft limit cannot undo it.
		lim := unix.Rlimit{Cur: n.nofile, Max: n.nofile}
		if err := unix.Prlimit(c.Process.Pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
			_ = c.Process.Kill()
			return fmt.Errorf("prlimit: %w", err)
		}
		return nil
	}
	p, err := harness.StartProcess(n.name, n.log(), env, start, bin, "run", "--config", n.config(), "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	n.proc = p
	_, err = harness.Poll(ctx, 15*time.Second, 20*time.Millisecond, n.name+"'s admin endpoint", func() (bool, string, error) {
		if err := n.check(); err != nil {
			return false, "", err
		}
		_, err := n.dpt()
		return err == nil, "", err
	})
	return err
}

// check is an error naming the node when its Caddy has exited.
func (n *node) check() error {
	if n.proc == nil || !n.proc.Alive() {
		return fmt.Errorf("%s exited (%v):\n%s", n.name, n.proc.Err(), harness.LogTail(n.log(), 15))
	}
	return nil
}

func (n *node) stop() {
	if n.proc != nil {
		n.proc.Stop()
	}
}

// kill ends the node's Caddy with SIGKILL and reaps it.
func (n *node) kill() {
	if n.proc != nil && n.proc.Alive() {
		_ = n.proc.Signal(syscall.SIGKILL)
		n.proc.Reap(5 * time.Second)
	}
}

// reload rewrites the config and runs `caddy reload`.
func (n *node) reload(bin string) error {
	if err := os.WriteFile(n.config(), []byte(n.caddyfile()), 0o600); err != nil {
		return err
	}
	out, err := exec.Command(bin, "reload", "--config", n.config(), "--adapter", "caddyfile", "--address", n.admin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("caddy reload: %w\n%s", err, out)
	}
	return nil
}

func (n *node) dpt() ([]harness.DPTRow, error) {
	var rows []harness.DPTRow
	err := harness.GetJSON(n.http, n.admin, "/vipa/dpt", &rows)
	return rows, err
}

func (n *node) crt() ([]harness.CRTRow, error) {
	var rows []harness.CRTRow
	err := harness.GetJSON(n.http, n.admin, "/vipa/crt", &rows)
	return rows, err
}

func (n *node) definitions() ([]harness.DefinitionRow, error) {
	var rows []harness.DefinitionRow
	err := harness.GetJSON(n.http, n.admin, "/vipa/definitions", &rows)
	return rows, err
}

// alive counts the members n sees alive, itself included.
func (n *node) alive() (int, error) {
	var rows []harness.MemberRow
	if err := harness.GetJSON(n.http, n.admin, "/vipa/members", &rows); err != nil {
		return 0, err
	}
	k := 0
	for _, r := range rows {
		if r.Status == "alive" {
			k++
		}
	}
	return k, nil
}

// metrics reads the node's Prometheus metrics: series (name and labels as
// printed) to value.
func (n *node) metrics() (map[string]float64, error) {
	body, err := harness.Get(n.http, n.admin, "/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

// goroutines is Caddy's goroutine count from its pprof endpoint.
func (n *node) goroutines() (int, error) {
	body, err := harness.Get(n.http, n.admin, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(body), "\n")
	v, ok := strings.CutPrefix(line, "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts %q", line)
	}
	return strconv.Atoi(strings.TrimSpace(v))
}

// usage is what a scenario compares before, during and after.
type usage struct {
	fds, goroutines, crt int
	rssMiB               float64
}

func (u usage) String() string {
	return fmt.Sprintf("%d fds, %d goroutines, %.1f MiB RSS, %d CRT", u.fds, u.goroutines, u.rssMiB, u.crt)
}

func (n *node) usage() (usage, error) {
	if err := n.check(); err != nil {
		return usage{}, err
	}
	var u usage
	var err error
	if u.fds, err = fdCount(n.proc.Pid()); err != nil {
		return u, err
	}
	if u.rssMiB, err = rssMiB(n.proc.Pid()); err != nil {
		return u, err
	}
	if u.goroutines, err = n.goroutines(); err != nil {
		return u, err
	}
	m, err := n.metrics()
	if err != nil {
		return u, err
	}
	u.crt = int(m["caddy_vipa_crt_entries"])
	return u, nil
}

// settle waits until the node's descriptors and goroutines are back within
// slack of base and its CRT is empty; it returns the last reading, and an
// error that tells what is left over if they are not.
func (n *node) settle(ctx context.Context, base usage, timeout time.Duration) (usage, error) {
	var last usage
	_, err := harness.Poll(ctx, timeout, 100*time.Millisecond, "back to baseline", func() (bool, string, error) {
		u, err := n.usage()
		if err != nil {
			return false, "", err
		}
		last = u
		if u.fds > base.fds+fdSlack {
			return false, u.String() + "; descriptors " + fdKinds(n.proc.Pid()), nil
		}
		return u.crt == 0 && u.fds <= base.fds+fdSlack && u.goroutines <= base.goroutines+goroutineSlack, u.String(), nil
	})
	if err != nil {
		return last, fmt.Errorf("baseline %s: %w", base, err)
	}
	return last, nil
}

// What "back to baseline" allows: the admin client's connection and a
// pprof request come and go; serf's timers start goroutines now and then.
const (
	fdSlack        = 4
	goroutineSlack = 10
)

func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// fdKinds counts a process's descriptors by kind (socket, pipe,
// anon_inode:[eventpoll], a path…), for a failure that finds too many.
func fdKinds(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	kinds := map[string]int{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if k, _, ok := strings.Cut(l, ":["); ok && !strings.HasPrefix(l, "anon_inode") {
			l = k
		}
		kinds[l]++
	}
	return fmt.Sprint(kinds)
}

func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
