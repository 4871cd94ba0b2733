//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// node is one Caddy of the fleet; it can be killed and started again with
// the same config.
type node struct {
	name, ip, admin string
	dir             string
	proc            *harness.Process
}

// fleet is three Caddy processes on 127.0.0.1–3: caddy-a routes the VIPA,
// caddy-b and caddy-c join it.
type fleet struct {
	bin, dir  string
	profile   string
	key       string
	port      int // the distributed port
	gossip    int // every node gossips on this port of its own address
	debug     bool
	restarted time.Time // when a node last started again
	nodes     []*node
}

func (f *fleet) routing() *node   { return f.nodes[0] }
func (f *fleet) targets() []*node { return f.nodes[1:] }
func (f *fleet) vipaAddr() string { return net.JoinHostPort(vipa, strconv.Itoa(f.port)) }

// startFleet starts the three nodes and waits until each sees three alive
// members and the targets know the definition.
func startFleet(ctx context.Context, bin, dir, profile string, debug bool, pp *harness.PortPicker) (*fleet, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f := &fleet{bin: bin, dir: dir, profile: profile, key: base64.StdEncoding.EncodeToString(key), debug: debug}
	var err error
	if f.port, err = pp.Pick("127.0.0.1", "127.0.0.2", "127.0.0.3", vipa); err != nil {
		return nil, err
	}
	if f.gossip, err = pp.Pick("127.0.0.1", "127.0.0.2", "127.0.0.3"); err != nil {
		return nil, err
	}
	for i, name := range []string{"caddy-a", "caddy-b", "caddy-c"} {
		admin, err := pp.Pick("127.0.0.1")
		if err != nil {
			return nil, err
		}
		n := &node{name: name, ip: fmt.Sprintf("127.0.0.%d", i+1), admin: fmt.Sprintf("127.0.0.1:%d", admin), dir: filepath.Join(dir, profile, name)}
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			return nil, err
		}
		f.nodes = append(f.nodes, n)
	}
	for _, n := range f.nodes {
		if err := f.start(ctx, n); err != nil {
			f.close()
			return nil, err
		}
	}
	for _, n := range f.nodes {
		if err := f.waitAlive(ctx, n, 3, 15*time.Second); err != nil {
			f.close()
			return nil, err
		}
	}
	for _, n := range f.targets() {
		_, err := harness.Poll(ctx, 10*time.Second, 20*time.Millisecond, n.name+" to learn the definition", func() (bool, string, error) {
			var defs []definitionRow
			err := getJSON(n.admin, "/vipa/definitions", &defs)
			ok := len(defs) == 1 && defs[0].VIPA == vipa && defs[0].RoutingNode == "caddy-a" && defs[0].Conflict == ""
			return ok, fmt.Sprintf("%+v", defs), err
		})
		if err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

// start runs n's Caddy and waits for its admin endpoint.
func (f *fleet) start(ctx context.Context, n *node) error {
	cfg := filepath.Join(n.dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(n.caddyfile(f)), 0o600); err != nil {
		return err
	}
	env := []string{"HOME=" + n.dir, "XDG_CONFIG_HOME=" + n.dir, "XDG_DATA_HOME=" + n.dir}
	p, err := harness.StartProcess(n.name, n.log(), env, nil, f.bin, "run", "--config", cfg, "--adapter", "caddyfile")
	if err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.proc = p
	_, err = harness.Poll(ctx, 15*time.Second, 20*time.Millisecond, n.name+"'s admin endpoint", func() (bool, string, error) {
		if !p.Alive() {
			return false, "", fmt.Errorf("%s exited (%v):\n%s", n.name, p.Err(), harness.LogTail(n.log(), 15))
		}
		var rows []dptRow
		return true, "", getJSON(n.admin, "/vipa/dpt", &rows)
	})
	return err
}

// waitAlive waits until n sees want alive members, itself included.
func (f *fleet) waitAlive(ctx context.Context, n *node, want int, timeout time.Duration) error {
	_, err := harness.Poll(ctx, timeout, 20*time.Millisecond, fmt.Sprintf("%d alive members on %s", want, n.name), func() (bool, string, error) {
		m, err := members(n.admin)
		alive := 0
		for _, s := range m {
			if s == "alive" {
				alive++
			}
		}
		return alive == want, fmt.Sprint(m), err
	})
	return err
}

// close stops every node at once.
func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		if n.proc != nil {
			wg.Go(n.proc.Stop)
		}
	}
	wg.Wait()
}

func (n *node) log() string { return filepath.Join(n.dir, "caddy.log") }

// errExited names a node that died on its own during a measurement.
var errExited = errors.New("node exited")

func (n *node) check() error {
	if n.proc == nil || !n.proc.Alive() {
		return fmt.Errorf("%s: %w:\n%s", n.name, errExited, harness.LogTail(n.log(), 15))
	}
	return nil
}
