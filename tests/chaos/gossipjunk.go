//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds for what junk and stalled streams on the gossip port may cost
// the node.
const (
	gossipMemLimit    = 64.0         // MiB of RSS or Go heap above the baseline, at the peak
	gossipMemAbort    = 1024.        // MiB of RSS growth at which the scenario stops opening streams
	gossipLogLimit    = 100          // warn and error lines for all the junk
	stateChannelLabel = "caddy-vipa" // the default label, public
)

// gossipJunk sends junk datagrams and streams to a keyed node's gossip
// port, then opens stalled state-channel streams: a well-formed hello (the
// label is public) announcing the largest frame, and nothing more. The
// node's memory must stay bounded, its log must not turn into a flood, and
// it must keep routing throughout.
func gossipJunk(ctx context.Context, e *env, r *result) error {
	n, a, addr, err := e.single(ctx, func(n *node) { n.key = e.key })
	if err != nil {
		return err
	}
	defer a.close()
	gossip := net.JoinHostPort(n.ip, strconv.Itoa(n.gossip))
	base, err := n.usage()
	if err != nil {
		return err
	}
	m0, err := n.metrics()
	if err != nil {
		return err
	}
	lines0 := logLines(n.log())

	if err := junkDatagrams(gossip, e.sz.GossipJunk); err != nil {
		return err
	}
	streams := junkStreams(gossip, e.sz.GossipJunk/10)
	time.Sleep(time.Second)
	noisy := logLines(n.log()) - lines0
	if _, err := short(addr, 3*time.Second); err != nil {
		r.fail("no routed connection after the junk: %v", err)
	}
	r.figure("%d junk datagrams and %d junk streams: %d warn/error log lines", e.sz.GossipJunk, streams, noisy)
	r.check(noisy <= gossipLogLimit, "junk logged %d warn/error lines (limit %d)", noisy, gossipLogLimit)

	conns, peakRSS, peakHeap := stallStreams(ctx, n, gossip, e.sz.GossipStall, base.rssMiB, m0["go_memstats_heap_inuse_bytes"])
	defer closeAll(conns)
	if _, err := short(addr, 3*time.Second); err != nil {
		r.fail("no routed connection beside the stalled streams: %v", err)
	}
	r.figure("%d stalled state-channel streams (hello, 1 MiB frame announced): peak RSS +%.1f MiB, Go heap in use +%.1f MiB",
		len(conns), peakRSS-base.rssMiB, peakHeap)
	r.check(peakRSS-base.rssMiB <= gossipMemLimit && peakHeap <= gossipMemLimit, "stalled streams cost %.1f MiB RSS, %.1f MiB heap (limit %.0f)", peakRSS-base.rssMiB, peakHeap, gossipMemLimit)
	closeAll(conns)
	after, serr := n.settle(ctx, base, 30*time.Second)
	r.figure("before %s; after %s", base, after)
	if serr != nil {
		r.fail("%v", serr)
	}
	return n.check()
}

// logLines counts a Caddy log's warn and error lines.
func logLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), `"level":"warn"`) + strings.Count(string(b), `"level":"error"`)
}

// junkDatagrams sends k random datagrams of 1–1400 bytes, paced so the
// kernel drops few of them.
func junkDatagrams(addr string, k int) error {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 1400)
	for i := range k {
		p := buf[:1+mrand.IntN(len(buf))]
		_, _ = rand.Read(p)
		_, _ = c.Write(p)
		if i%100 == 99 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// junkStreams opens k TCP streams that send random bytes (a third of them
// behind the state channel's "VIPA" prefix) and close; it returns how many
// connected.
func junkStreams(addr string, k int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	jobs := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
				if err != nil {
					continue
				}
				p := make([]byte, 1+mrand.IntN(4096))
				_, _ = rand.Read(p)
				if i%3 == 0 {
					copy(p, "VIPA")
				}
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				_, _ = c.Write(p)
				c.Close()
				mu.Lock()
				done++
				mu.Unlock()
			}
		})
	}
	for i := range k {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return done
}

// stallStreams opens k state-channel streams that send a hello and the
// length of the largest frame, then stall. It returns the streams and the
// peak RSS (MiB) and Go heap growth (MiB) seen while they were open; it
// stops opening streams if the node's RSS runs away.
func stallStreams(ctx context.Context, n *node, addr string, k int, baseRSS, baseHeap float64) ([]net.Conn, float64, float64) {
	var conns []net.Conn
	peakRSS, peakHeap := baseRSS, 0.0
	measure := func() {
		if v, err := rssMiB(n.proc.Pid()); err == nil {
			peakRSS = max(peakRSS, v)
		}
		if m, err := n.metrics(); err == nil {
			peakHeap = max(peakHeap, (m["go_memstats_heap_inuse_bytes"]-baseHeap)/(1<<20))
		}
	}
	hello := make([]byte, 0, 64)
	hello = append(hello, "VIPA"...)
	hello = append(hello, 1, 1, byte(len(stateChannelLabel)))
	hello = append(hello, stateChannelLabel...)
	for i := range k {
		if ctx.Err() != nil {
			break
		}
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			continue
		}
		nonce := make([]byte, 16)
		_, _ = rand.Read(nonce)
		var frame [4]byte
		binary.BigEndian.PutUint32(frame[:], 1<<20+64)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write(append(append(append([]byte(nil), hello...), nonce...), frame[:]...))
		_ = c.SetDeadline(time.Time{})
		conns = append(conns, c)
		if i%100 == 99 {
			measure()
			if peakRSS-baseRSS > gossipMemAbort {
				fmt.Fprintf(os.Stderr, "stopping at %d stalled streams: RSS +%.0f MiB\n", len(conns), peakRSS-baseRSS)
				break
			}
		}
	}
	for range 10 {
		measure()
		time.Sleep(200 * time.Millisecond)
	}
	return conns, peakRSS, peakHeap
}
