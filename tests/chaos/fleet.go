//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// fleet is a routing node caddy-a on 127.0.0.1 with no application of its
// own, and target nodes caddy-b, caddy-c… on 127.0.0.2, 127.0.0.3… that
// join it, all with the fleet key.
type fleet struct {
	a       *node
	targets []*node
	port    int    // the distributed port
	addr    string // VIPA:port
}

// fleetConf shapes a fleet: how many targets, the gossip profile, the
// handler's dial timeout, whether the routing node joins its targets.
type fleetConf struct {
	targets int
	profile string
	dial    string
	joinAll bool
	defs    string // more vipadistribute lines for the routing node
}

func (e *env) fleet(ctx context.Context, fc fleetConf) (*fleet, error) {
	t0 := time.Now()
	ips := []string{"127.0.0.1", vipa}
	for i := range fc.targets {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", i+2))
	}
	port, err := e.pp.Pick(ips...)
	if err != nil {
		return nil, err
	}
	gossip, err := e.pp.Pick(ips...)
	if err != nil {
		return nil, err
	}
	f := &fleet{port: port, addr: net.JoinHostPort(vipa, strconv.Itoa(port))}
	aConf := nodeConf{name: "caddy-a", ip: "127.0.0.1", gossip: gossip, key: e.key, profile: fc.profile, ports: []int{port}, dial: fc.dial, defs: fc.defs}
	for i := range fc.targets {
		ip := fmt.Sprintf("127.0.0.%d", i+2)
		t, err := e.newNode(nodeConf{name: fmt.Sprintf("caddy-%c", 'b'+i), ip: ip, gossip: gossip, key: e.key, profile: fc.profile,
			join: []string{fmt.Sprintf("127.0.0.1:%d", gossip)}})
		if err != nil {
			return nil, err
		}
		f.targets = append(f.targets, t)
		if fc.joinAll {
			aConf.join = append(aConf.join, fmt.Sprintf("%s:%d", ip, gossip))
		}
	}
	if f.a, err = e.newNode(aConf); err != nil {
		return nil, err
	}
	if err := f.a.start(ctx, e.bin); err != nil {
		return nil, err
	}
	errs := make([]error, len(f.targets))
	var wg sync.WaitGroup
	for i, t := range f.targets {
		wg.Go(func() { errs[i] = t.start(ctx, e.bin) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := f.waitMembers(ctx, f.a, 1+fc.targets, 20*time.Second); err != nil {
		return nil, err
	}
	for _, t := range f.targets {
		_, err := harness.Poll(ctx, 15*time.Second, 20*time.Millisecond, t.name+" to learn the definition", func() (bool, string, error) {
			defs, err := t.definitions()
			ok := len(defs) > 0
			for _, d := range defs {
				ok = ok && d.RoutingNode == "caddy-a" && d.Conflict == ""
			}
			return err == nil && ok, fmt.Sprintf("%+v", defs), err
		})
		if err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(e.log, "  %s: %d nodes up in %v\n", e.scenario, 1+fc.targets, time.Since(t0).Round(time.Millisecond))
	return f, nil
}

// appAddr is where target t's application listens.
func (f *fleet) appAddr(t *node) string { return net.JoinHostPort(t.ip, strconv.Itoa(f.port)) }

func (f *fleet) waitMembers(ctx context.Context, n *node, want int, timeout time.Duration) error {
	_, err := harness.Poll(ctx, timeout, 20*time.Millisecond, fmt.Sprintf("%d alive members on %s", want, n.name), func() (bool, string, error) {
		k, err := n.alive()
		return k == want, fmt.Sprint(k), err
	})
	return err
}

// waitRows waits until the routing node has a ready row of every target.
func (f *fleet) waitRows(ctx context.Context, timeout time.Duration) error {
	for _, t := range f.targets {
		if err := waitRow(ctx, f.a, f.port, t.name, true, timeout); err != nil {
			return err
		}
	}
	return nil
}

// openStreams opens k streams through the VIPA; roundrobin spreads them
// over the targets.
func (f *fleet) openStreams(k int) ([]*stream, error) {
	var out []*stream
	for range k {
		s, err := startStream(f.addr, 5*time.Second)
		if err != nil {
			endStreams(out)
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func endStreams(ss []*stream) {
	for _, s := range ss {
		s.stop.Store(true)
		s.c.Close()
	}
	for _, s := range ss {
		<-s.done
	}
}

// byNode splits streams by the node whose app serves them.
func byNode(ss []*stream, node string) (on, other []*stream) {
	for _, s := range ss {
		if s.node == node {
			on = append(on, s)
		} else {
			other = append(other, s)
		}
	}
	return on, other
}

// crtCount is the routing node's CRT size by its metric.
func crtCount(n *node) (int, error) {
	m, err := n.metrics()
	if err != nil {
		return 0, err
	}
	return int(m["caddy_vipa_crt_entries"]), nil
}

// waitCRT waits until the routing node's CRT holds exactly want rows.
func waitCRT(ctx context.Context, n *node, want int, timeout time.Duration) (int, error) {
	last := -1
	_, err := harness.Poll(ctx, timeout, 50*time.Millisecond, fmt.Sprintf("%d CRT rows on %s", want, n.name), func() (bool, string, error) {
		rows, err := n.crt()
		last = len(rows)
		return err == nil && len(rows) == want, fmt.Sprint(len(rows)), err
	})
	return last, err
}
