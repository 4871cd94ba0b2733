package relay

// Benchmarks compare Dial and Start with io.Copy (splice, two goroutines) and a plain
// user-space copy, each run as the relay of a child process:
//
//	go test -run xxx -bench . -benchmem ./module/relay/
//
// RELAY_IDLE_CONNS sets how many idle connections the footprint holds
// (5000); RELAY_BENCH_PIN=0 leaves relay and load generator unpinned.

import (
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchCPUs pins the child relay to CPU 0 and the load generator to CPU 1,
// unless there is one CPU or RELAY_BENCH_PIN=0.
func benchCPUs() (relayCPU, loadCPU int) {
	if runtime.NumCPU() < 2 || os.Getenv("RELAY_BENCH_PIN") == "0" {
		return -1, -1
	}
	return 0, 1
}

// BenchmarkBulk moves 1 GiB per op through one relayed connection, one
// direction at a time. The relay runs in a child process pinned to its own
// CPU; Gbit/s is wall-clock throughput, Gbit/s/core is bytes per relay CPU
// second (the relay's efficiency, whatever else the machine is doing).
func BenchmarkBulk(b *testing.B) {
	const size = 1 << 30
	relayCPU, loadCPU := benchCPUs()
	for _, dir := range []string{"up", "down"} {
		for _, impl := range relayImpls {
			b.Run(dir+"/"+impl.name, func(b *testing.B) {
				defer pinThreads(loadCPU)()
				ln := listen(b)
				defer ln.Close()
				child := startChild(b, impl.name, ln.Addr().String(), relayCPU)
				chunk := make([]byte, 1<<20)
				rbuf := make([]byte, 1<<20)
				b.SetBytes(size)
				cpu0 := child.cpuNanos()
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					client, backend := dialThrough(b, child.addr, ln)
					from, to := client, backend
					if dir == "down" {
						from, to = backend, client
					}
					to.CloseWrite()
					go func() {
						for left := size; left > 0; left -= len(chunk) {
							from.Write(chunk)
						}
						from.CloseWrite()
					}()
					var got int
					for {
						n, err := to.Read(rbuf)
						got += n
						if err != nil {
							break
						}
					}
					if got != size {
						b.Fatalf("moved %d bytes", got)
					}
					client.Close()
					backend.Close()
				}
				wall := time.Since(start)
				b.StopTimer()
				cpu := time.Duration(child.cpuNanos() - cpu0)
				bits := float64(size) * float64(b.N) * 8
				b.ReportMetric(bits/wall.Seconds()/1e9, "Gbit/s")
				b.ReportMetric(bits/cpu.Seconds()/1e9, "Gbit/s/core")
			})
		}
	}
}

// dialThrough opens a connection through the relay at addr and returns the
// client end and the backend end (accepted on ln).
func dialThrough(tb testing.TB, addr string, ln net.Listener) (client, backend *net.TCPConn) {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	bc, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	return c.(*net.TCPConn), bc.(*net.TCPConn)
}

// BenchmarkPingPong is one 100-byte request and reply per op through a
// relayed connection: the cost of waking up, not of moving bytes.
func BenchmarkPingPong(b *testing.B) {
	relayCPU, loadCPU := benchCPUs()
	for _, impl := range relayImpls {
		b.Run(impl.name, func(b *testing.B) {
			defer pinThreads(loadCPU)()
			ln := listen(b)
			defer ln.Close()
			child := startChild(b, impl.name, ln.Addr().String(), relayCPU)
			client, backend := dialThrough(b, child.addr, ln)
			defer client.Close()
			defer backend.Close()
			go func() {
				io.Copy(struct{ io.Writer }{backend}, struct{ io.Reader }{backend})
			}()
			msg := make([]byte, 100)
			cpu0 := child.cpuNanos()
			b.ResetTimer()
			for range b.N {
				client.Write(msg)
				if _, err := io.ReadFull(client, msg); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(child.cpuNanos()-cpu0)/float64(b.N), "relay-CPU-ns/op")
		})
	}
}

// footprint is what N idle relayed connections cost the relay process.
type footprint struct {
	rss, heap, stack, slab float64 // bytes per connection
	fds, pipes, goroutines float64 // per connection
	conns                  int     // connections held
	lent                   int64   // pipes lent out by the relay's pool while idle
}

var (
	footprintMu   sync.Mutex
	footprintMemo = map[string]footprint{}
)

// idleConns is how many idle connections the footprint holds
// (RELAY_IDLE_CONNS overrides).
func idleConns() int {
	if n, err := strconv.Atoi(os.Getenv("RELAY_IDLE_CONNS")); err == nil && n > 0 {
		return n
	}
	return 5000
}

// measureFootprint opens n connections through a child relay, sends one
// small message each way on each, lets them idle and compares the child's
// RSS, descriptors and goroutines before and after. pipe-fds counts pipes
// in the pool too; pipes-lent is what connections hold. Slab is
// system-wide kernel memory including both ends' sockets: compare it across
// relays, on a quiet machine.
func measureFootprint(tb testing.TB, impl string, n int) footprint {
	footprintMu.Lock()
	defer footprintMu.Unlock()
	if f, ok := footprintMemo[impl]; ok {
		return f
	}
	// The descriptor limit may be fixed: hold fewer connections of a relay
	// that needs more descriptors each (io.Copy holds two pipes).
	raiseFDLimit(uint64(6*n + 1024))
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	perConn := map[string]int{"relay": 2, "io.Copy": 6}[impl]
	n = min(n, (int(lim.Cur)-512)/max(2, perConn))
	ln := listen(tb)
	defer ln.Close()
	child := startChild(tb, impl, ln.Addr().String(), -1)
	settle := func() (rss int64, s []int64) {
		s = child.ask("settle", "settled")
		time.Sleep(50 * time.Millisecond)
		return procKB("/proc/"+strconv.Itoa(child.pid)+"/status", "VmRSS") << 10, s
	}
	rss0, s0 := settle()
	fds0, pipes0 := fdKinds(child.pid)
	slab0 := procKB("/proc/meminfo", "Slab") << 10

	conns := make([]*net.TCPConn, 0, 2*n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	msg := make([]byte, 100)
	for range n {
		client, backend := dialThrough(tb, child.addr, ln)
		conns = append(conns, client, backend)
		if impl == "sockets" || impl == "goroutine" {
			continue
		}
		client.Write(msg)
		io.ReadFull(backend, msg)
		backend.Write(msg)
		io.ReadFull(client, msg)
	}
	rss1, s1 := settle()
	fds1, pipes1 := fdKinds(child.pid)
	slab1 := procKB("/proc/meminfo", "Slab") << 10
	per := func(a, b int64) float64 { return float64(b-a) / float64(n) }
	f := footprint{
		rss: per(rss0, rss1), heap: per(s0[1], s1[1]), stack: per(s0[2], s1[2]), slab: per(slab0, slab1),
		fds: per(int64(fds0), int64(fds1)), pipes: per(int64(pipes0), int64(pipes1)),
		goroutines: per(s0[0], s1[0]),
	}
	f.conns = n
	f.lent = s1[3]
	footprintMemo[impl] = f
	return f
}

// BenchmarkIdleFootprint reports the per-connection cost of idle relayed
// connections in the relay process (ns/op is meaningless here). "sockets"
// holds the two relay-side sockets only; "goroutine" adds one parked
// goroutine per connection, the caller's, which a server has anyway.
func BenchmarkIdleFootprint(b *testing.B) {
	n := idleConns()
	for _, impl := range append(append([]relayImpl{}, baselineImpls...), relayImpls...) {
		b.Run(impl.name, func(b *testing.B) {
			f := measureFootprint(b, impl.name, n)
			for range b.N {
			}
			b.ReportMetric(f.rss, "RSS-B/conn")
			b.ReportMetric(f.heap, "heap-B/conn")
			b.ReportMetric(f.stack, "stack-B/conn")
			b.ReportMetric(f.slab, "slab-B/conn")
			b.ReportMetric(f.fds, "fds/conn")
			b.ReportMetric(f.pipes, "pipe-fds/conn")
			b.ReportMetric(f.goroutines, "goroutines/conn")
			b.ReportMetric(float64(f.conns), "conns")
			b.ReportMetric(float64(f.lent), "pipes-lent")
		})
	}
}
