package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// Contender names, in table order.
const (
	cDirect     = "direct"
	cDistribute = "distribute"
	cProxy      = "l4proxy"
	cHAProxy    = "haproxy"
)

var allContenders = []string{cDirect, cDistribute, cProxy, cHAProxy}

// contender is one way from the load client to the backends.
type contender struct {
	name   string
	addr   string                   // where the load client connects
	launch func() (*process, error) // starts the proxy; nil for direct
	proc   *process                 // the running proxy
	admin  string                   // Caddy admin address (pprof); empty for others
	note   string                   // one line for the header: version, config
	broken bool                     // could not be restarted: skipped from then on
}

// probe does one idle-mode exchange through addr: the path works end to end.
func probe(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{modeIdle}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[0] != idleReply {
		return fmt.Errorf("probe reply %#x, want %#x", b[0], idleReply)
	}
	return nil
}

// waitReady probes until the contender passes a byte end to end.
func waitReady(ctx context.Context, ct *contender, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for {
		err := probe(ct.addr)
		if err == nil {
			return nil
		}
		if ct.proc != nil && !ct.proc.alive() {
			return fmt.Errorf("%s exited (%v):\n%s", ct.name, ct.proc.err, ct.proc.logTail(15))
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready at %s after %v: %v", ct.name, ct.addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
