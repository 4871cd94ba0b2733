package serfsync

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// stalledStream opens a stream to addr as an attacker without the key
// would, sends a prefix of what a client sends first and stalls. kind:
// 0 nothing, 1 a hello, 2 a hello and a 1 MiB frame header, 3 a hello and
// part of a request-sized frame.
func stalledStream(addr string, label string, kind int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if kind > 0 {
		b.WriteString(channelMagic)
		b.Write([]byte{channelVersion, 1, byte(len(label))})
		b.WriteString(label)
		b.Write(make([]byte, nonceSize))
	}
	switch kind {
	case 2:
		_ = binary.Write(&b, binary.BigEndian, uint32(1<<20))
	case 3:
		_ = binary.Write(&b, binary.BigEndian, uint32(maxRequestFrame))
		b.Write(make([]byte, 10))
	}
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(b.Bytes()); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestStalledStreamsBounded is the attack of a stranger on the gossip
// port: thousands of state channel streams that announce 1 MiB frames, or
// stall in the hello or before the first byte. Memory stays bounded and the
// routing node keeps syncing with its real peers, during a flood that keeps
// opening streams.
func TestStalledStreamsBounded(t *testing.T) {
	const held = 4000
	nodes := startFleet(t, 3, fleetOpts{keys: [][]byte{bytes.Repeat([]byte{9}, 32)}})
	defs := routed(nodes)
	nodes[1].set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	waitExact(t, 3*time.Second, nodes[0], nodes, defs)
	addr := nodes[0].BindAddr().String()
	base := heapInUse()

	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= held; i = next.Add(1) {
				c, err := stalledStream(addr, "test", int(i%4))
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	opened := len(conns)
	mu.Unlock()
	if opened < held/2 {
		t.Fatalf("only %d of %d attack streams opened", opened, held)
	}
	grown := int64(heapInUse()) - int64(base)
	t.Logf("%d stalled streams held: heap grew %d KiB, %d goroutines, %d pending, stats %v",
		opened, grown>>10, runtime.NumGoroutine(), nodes[0].mux.pending.len(), nodes[0].Stats())
	if grown > 64<<20 {
		t.Errorf("heap grew %d MiB under %d stalled streams", grown>>20, opened)
	}
	if n := nodes[0].mux.pending.len(); n > maxPending {
		t.Errorf("%d pending streams, limit %d", n, maxPending)
	}

	// A flood goes on: the real peers still sync.
	stop := make(chan struct{})
	var flood sync.WaitGroup
	var flooded atomic.Int64
	for range 4 {
		flood.Add(1)
		go func() {
			defer flood.Done()
			var ring []net.Conn
			defer func() {
				for _, c := range ring {
					_ = c.Close()
				}
			}()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := stalledStream(addr, "test", i%4)
				if err != nil {
					continue
				}
				flooded.Add(1)
				ring = append(ring, c)
				if len(ring) > 250 {
					_ = ring[0].Close()
					ring = ring[1:]
				}
			}
		}()
	}
	for i, port := range []uint16{8081, 8082, 8083} {
		nodes[1+i%2].set([]vipa.Listener{{VIPA: vipaA, Port: port, Ready: 1}})
		d := waitExact(t, 5*time.Second, nodes[0], nodes, defs)
		t.Logf("report change %d under a flood: exact after %v", i, d)
	}
	grown = int64(heapInUse()) - int64(base)
	close(stop)
	flood.Wait()
	s := nodes[0].Stats()
	t.Logf("flood of %d more streams: heap grew %d KiB; stats %v", flooded.Load(), grown>>10, s)
	if grown > 64<<20 {
		t.Errorf("heap grew %d MiB under a flood", grown>>20)
	}
	if s["stream_shed"] == 0 || s["drop_size"] == 0 {
		t.Errorf("shed streams or oversized frames not counted: %v", s)
	}

	// The attacker gives up: nothing stays pending.
	mu.Lock()
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil
	mu.Unlock()
	waitFor(t, 5*time.Second, "pending streams drained", func() bool { return nodes[0].mux.pending.len() == 0 })
}

// TestJunkLogsSampled: random datagrams and streams to the gossip port are
// counted, and logged once per kind and interval, not once each.
func TestJunkLogsSampled(t *testing.T) {
	const datagrams, streams = 10000, 300
	key := bytes.Repeat([]byte{9}, 32)
	nodes := startFleet(t, 2, fleetOpts{keys: [][]byte{key}})
	n := nodes[0]
	addr := n.BindAddr().String()
	before := n.logs.Len()
	rng := rand.New(rand.NewPCG(7, 8))

	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	buf := make([]byte, 512)
	for i := range datagrams {
		p := buf[:1+rng.IntN(len(buf))]
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		_, _ = udp.Write(p)
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // let the receiver keep up: count, not loss
		}
	}
	wrong := newChannelKeys([][]byte{bytes.Repeat([]byte{1}, 32)}, "test")
	for i := range streams {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0: // memberlist junk
			p := buf[:1+rng.IntN(64)]
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			p[0] = byte(1 + rng.IntN(20))
			_, _ = c.Write(p)
		case 1: // a state channel peer with another key
			nonceC, _ := wrong.clientHello(c)
			if nonceS, err := readServerHello(c); err == nil {
				s, _ := wrong.clientSession(nonceC, nonceS)
				_ = writeFrame(c, s.seal((&syncRequest{from: "intruder"}).encode()))
			}
		case 2: // a hello from another fleet
			_, _ = newChannelKeys(nil, "other").clientHello(c)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Read(buf) // until the node closes it
		_ = c.Close()
	}
	waitFor(t, 5*time.Second, "junk counted", func() bool {
		s := n.Stats()
		return s["gossip_error"] >= datagrams/4+streams/3 && s["auth_fail"] >= 2*streams/3
	})
	s := n.Stats()
	lines := n.logs.Len() - before
	kinds := map[string]int{}
	for _, e := range n.logs.All()[before:] {
		kinds[logKind(e.Message)]++
	}
	t.Logf("%d datagrams, %d streams: %d lines logged, %d kinds %v; stats %v", datagrams, streams, lines, len(kinds), kinds, s)
	if lines > 20 {
		t.Errorf("%d lines logged for junk", lines)
	}
	if s["log_suppressed"] < datagrams/4 {
		t.Errorf("suppressed lines not counted: %v", s)
	}
	// The fleet still works.
	defs := routed(nodes)
	nodes[1].set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	waitExact(t, 3*time.Second, n, nodes, defs)
}

func TestLogSampler(t *testing.T) {
	var s logSampler
	now := time.Now()
	if ok, _ := s.allow("a", now); !ok {
		t.Fatal("first line of a kind held back")
	}
	for range 5 {
		if ok, _ := s.allow("a", now.Add(time.Second)); ok {
			t.Fatal("second line within the interval logged")
		}
	}
	if ok, _ := s.allow("b", now); !ok {
		t.Fatal("another kind held back")
	}
	if ok, n := s.allow("a", now.Add(logInterval)); !ok || n != 5 {
		t.Fatalf("after the interval: %v, %d suppressed; want true, 5", ok, n)
	}
	for i := range 2 * maxLogKinds {
		s.allow(fmt.Sprint("k", i), now)
	}
	if len(s.kinds) > maxLogKinds+1 {
		t.Fatalf("%d kinds remembered", len(s.kinds))
	}
	if got := logKind(`memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.1:4242`); got != "memberlist: Decrypt packet failed" {
		t.Errorf("kind %q", got)
	}
	if got, other := logKind(`memberlist: UDP packet too short (3 bytes) from=127.0.0.1:1`), logKind(`memberlist: UDP packet too short (12 bytes) from=127.0.0.9:2`); got != other {
		t.Errorf("kinds %q and %q differ", got, other)
	}
}
