//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// singleBase is single with the node's usage once it routes: the baseline
// a scenario compares descriptors, goroutines and memory with.
func (e *env) singleBase(ctx context.Context, set func(*node)) (*node, *app, string, usage, error) {
	n, a, addr, err := e.single(ctx, set)
	if err != nil {
		return nil, nil, "", usage{}, err
	}
	base, err := n.usage()
	if err != nil {
		a.close()
		return nil, nil, "", usage{}, err
	}
	return n, a, addr, base, nil
}

// single starts one routing node on 127.0.0.1 whose own app on
// 127.0.0.1:port is the VIPA's only target, and waits until it routes.
// It returns the node, the app and the VIPA's address; set, if not nil,
// adjusts the node before it starts.
func (e *env) single(ctx context.Context, set func(*node)) (*node, *app, string, error) {
	port, err := e.pp.Pick("127.0.0.1", vipa)
	if err != nil {
		return nil, nil, "", err
	}
	gossip, err := e.pp.Pick("127.0.0.1")
	if err != nil {
		return nil, nil, "", err
	}
	n, err := e.newNode(nodeConf{name: "caddy-a", ip: "127.0.0.1", gossip: gossip, ports: []int{port}})
	if err != nil {
		return nil, nil, "", err
	}
	if set != nil {
		set(n)
	}
	a, err := listenApp(net.JoinHostPort(n.ip, strconv.Itoa(port)), n.name)
	if err != nil {
		return nil, nil, "", err
	}
	if err := n.start(ctx, e.bin); err != nil {
		a.close()
		return nil, nil, "", err
	}
	if err := waitRow(ctx, n, port, n.name, true, 10*time.Second); err != nil {
		a.close()
		return nil, nil, "", err
	}
	addr := net.JoinHostPort(vipa, strconv.Itoa(port))
	if err := warmUp(addr); err != nil {
		a.close()
		return nil, nil, "", err
	}
	return n, a, addr, nil
}

// warmUp routes a few connections, so what the relay creates once (its
// pollers and their descriptors) is part of the baseline, not a leak.
func warmUp(addr string) error {
	for range 20 {
		if _, err := short(addr, 5*time.Second); err != nil {
			return fmt.Errorf("warm-up connection through %s: %w", addr, err)
		}
	}
	s, err := startStream(addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("warm-up stream through %s: %w", addr, err)
	}
	return s.end()
}

// waitRow waits until n's DPT has (or, with want false, lacks) a ready
// row of target on port.
func waitRow(ctx context.Context, n *node, port int, target string, want bool, timeout time.Duration) error {
	what := fmt.Sprintf("%s's row on %s for port %d", target, n.name, port)
	if !want {
		what += " to go"
	}
	_, err := harness.Poll(ctx, timeout, 10*time.Millisecond, what, func() (bool, string, error) {
		if err := n.check(); err != nil {
			return false, "", err
		}
		rows, err := n.dpt()
		if err != nil {
			return false, "", err
		}
		return hasRow(rows, port, target) == want, fmt.Sprintf("%+v", rows), nil
	})
	return err
}
