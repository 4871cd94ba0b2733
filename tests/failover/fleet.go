//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// fleet is a lab with a Caddy and an application on each node: a routes
// the VIPA, b and c are its backups of ranks 200 and 100.
type fleet struct {
	lab      *netlab.Lab
	bin, dir string
	nodes    map[string]*harness.Process
	configs  map[string]netlab.Node
	apps     []*app
}

func startFleet(bin, dir string, fast bool) (*fleet, error) {
	lab, err := netlab.New("a", "b", "c")
	if err != nil {
		return nil, err
	}
	f := &fleet{lab: lab, bin: bin, dir: dir, nodes: map[string]*harness.Process{}, configs: map[string]netlab.Node{}}
	a := lab.Node("a")
	for _, h := range lab.Nodes {
		ln, err := h.Listen("tcp", fmt.Sprintf("%s:%d", h.IP, netlab.Port))
		if err != nil {
			f.close()
			return nil, err
		}
		f.apps = append(f.apps, startApp("caddy-"+h.Name, ln))
	}
	for _, n := range []netlab.Node{
		{Host: a, Seed: a, Peers: []*netlab.Host{lab.Node("b"), lab.Node("c")}, Define: true},
		{Host: lab.Node("b"), Seed: a, Rank: 200},
		{Host: lab.Node("c"), Seed: a, Rank: 100},
	} {
		n.Fast, n.Interface, n.Layer4 = fast, true, true
		if err := f.start(n); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

// start runs the node's Caddy in its namespace (ip netns exec execs it, so
// signals reach Caddy) and waits for its admin endpoint.
func (f *fleet) start(n netlab.Node) error {
	h := n.Host
	f.configs[h.Name] = n
	cfg := filepath.Join(f.dir, h.Name+".Caddyfile")
	if err := os.WriteFile(cfg, []byte(n.Caddyfile()), 0o600); err != nil {
		return err
	}
	home := filepath.Join(f.dir, h.Name)
	p, err := harness.StartProcess("caddy-"+h.Name, filepath.Join(f.dir, h.Name+".log"),
		[]string{"HOME=" + home, "XDG_CONFIG_HOME=" + home, "XDG_DATA_HOME=" + home}, nil,
		"ip", "netns", "exec", h.NS, f.bin, "run", "--config", cfg, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	f.nodes[h.Name] = p
	c := h.HTTPClient()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := harness.Get(c, netlab.Admin, "/config/"); err == nil {
			return nil
		}
		if !p.Alive() || time.Now().After(deadline) {
			return fmt.Errorf("caddy-%s did not start: %s", h.Name, harness.LogTail(p.Log, 10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vipadynRow is one row of GET /vipa/vipadyn.
type vipadynRow struct {
	VIPA   string `json:"vipa"`
	Status string `json:"status"`
	Rank   int    `json:"rank"`
	Owner  string `json:"owner"`
	Since  string `json:"since"`
}

// status is the node's /vipa/vipadyn status for the VIPA ("" when unknown).
func (f *fleet) status(name string) string {
	var rows []vipadynRow
	if err := harness.GetJSON(f.lab.Node(name).HTTPClient(), netlab.Admin, "/vipa/vipadyn", &rows); err != nil {
		return ""
	}
	for _, r := range rows {
		if r.VIPA == netlab.VIPA.String() {
			return r.Status
		}
	}
	return ""
}

// wait waits until each named node shows its status for the VIPA.
func (f *fleet) wait(want map[string]string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ok := true
		for name, status := range want {
			ok = ok && f.status(name) == status
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			got := map[string]string{}
			for name := range want {
				got[name] = f.status(name)
			}
			return fmt.Errorf("statuses %v after %s, want %v", got, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready waits until a is active, b and c are backups, the client reaches
// the VIPA, and each backup's DPT holds all three targets.
func (f *fleet) ready(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := f.status("a") == "active" && f.status("b") == "backup" && f.status("c") == "backup"
		if ok {
			c, err := f.lab.Client.DialTimeout("tcp", vipaAddr(), time.Second)
			if err == nil {
				c.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet not ready after %s: a %q, b %q, c %q", timeout, f.status("a"), f.status("b"), f.status("c"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startReadyFleet starts a fleet, waits until it is ready and lets the
// reports settle, so the backups hold the full DPT: where every trial
// begins. The caller closes the fleet.
func startReadyFleet(e env, fast bool) (*fleet, error) {
	f, err := startFleet(e.bin, e.dir, fast)
	if err != nil {
		return nil, err
	}
	if err := f.ready(60 * time.Second); err != nil {
		f.close()
		return nil, err
	}
	time.Sleep(2 * time.Second)
	return f, nil
}

func vipaAddr() string { return net.JoinHostPort(netlab.VIPA.String(), fmt.Sprint(netlab.Port)) }

func (f *fleet) close() {
	for _, p := range f.nodes {
		p.Stop()
	}
	for _, a := range f.apps {
		a.stop()
	}
	_ = f.lab.Close()
}
