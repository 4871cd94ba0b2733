//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The low-concurrency cases: one client doing one thing at a time, as an
// interactive protocol does. Nothing queues, so each step's latency (a
// wake-up, a hand-off between threads) is what they measure. The proxy's
// CPU per operation comes from its own threads' run time, which, unlike a
// core's busy share, other programs on the machine do not inflate.

// pingConns is the connection count of the concurrent ping-pong case.
const pingConns = 64

// conn1 is the connection-rate case with one client: connect, 64-byte
// exchange, close, one after the other. oneCore moves the proxy to the
// load core for the case, so that every hop is a context switch on one
// core rather than a wake-up across two, and puts the waker on the proxy
// core (see waker.go).
func (r *runner) conn1(ct *contender, oneCore bool) map[string]float64 {
	prefix := "conn1_"
	if oneCore {
		prefix = "conn1core_"
		if !r.moveToLoadCore(ct, "conn1core") {
			return nil
		}
		defer r.moveBack(ct, "conn1core")
		if w := r.startWaker(); w != nil {
			defer w.Stop()
		}
	}
	lat := make([]time.Duration, 0, 1<<14)
	run := r.seed() << 32
	use0 := procSched(ct)
	start := time.Now()
	for i := uint64(0); i < maxSamples && time.Since(start) < r.cfg.Duration && r.ctx.Err() == nil; i++ {
		t0 := time.Now()
		if err := r.exchange(ct.addr, run|i); err != nil {
			r.fails.conn("%s: connection %d: %v", strings.TrimSuffix(prefix, "_"), i, err)
			return nil
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	use := procSched(ct)
	if len(lat) == 0 {
		return nil
	}
	m := map[string]float64{prefix + "per_s": float64(len(lat)) / elapsed.Seconds()}
	percentiles(m, prefix, lat)
	if ct.proc != nil {
		m[prefix+"cpu_us"], m[prefix+"switches"] = use.per(use0, len(lat))
	}
	return m
}

func (r *runner) conn1Split(ct *contender) map[string]float64 { return r.conn1(ct, false) }
func (r *runner) conn1Core(ct *contender) map[string]float64  { return r.conn1(ct, true) }

// pingPongSplit: 64-byte messages echoed one at a time over each of n
// connections, proxy and load on their own cores.
func (r *runner) pingPongSplit(ct *contender, n int) map[string]float64 {
	prefix := fmt.Sprintf("pp%d_", n)
	conns := make([]*pingConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()
	run := r.seed() << 40
	for i := range n {
		c, err := dial(ct.addr)
		if err != nil {
			r.fails.conn("%s: dial %s: %v", strings.TrimSuffix(prefix, "_"), ct.addr, err)
			return nil
		}
		c.SetDeadline(time.Now().Add(r.cfg.Duration + ioSlack))
		conns = append(conns, &pingConn{c: c, id: run | uint64(i)<<24, rtts: make([]time.Duration, 0, 1<<12)})
	}
	use0 := procSched(ct)
	start := time.Now()
	end := start.Add(r.cfg.Duration)
	var wg sync.WaitGroup
	for _, pc := range conns {
		wg.Go(func() { pc.loop(r, end, prefix) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	use := procSched(ct)
	var all []time.Duration
	for _, pc := range conns {
		if pc.err != nil {
			return nil // reported by the connection
		}
		all = append(all, pc.rtts...)
	}
	if len(all) == 0 {
		return nil
	}
	m := map[string]float64{prefix + "per_s": float64(len(all)) / elapsed.Seconds()}
	percentiles(m, prefix, all)
	if ct.proc != nil {
		m[prefix+"cpu_us"], m[prefix+"switches"] = use.per(use0, len(all))
	}
	return m
}

func (r *runner) pingPong1(ct *contender) map[string]float64  { return r.pingPongSplit(ct, 1) }
func (r *runner) pingPong64(ct *contender) map[string]float64 { return r.pingPongSplit(ct, pingConns) }

// pingConn is one connection of a ping-pong case.
type pingConn struct {
	c    *net.TCPConn
	id   uint64
	rtts []time.Duration
	err  error
}

func (pc *pingConn) loop(r *runner, end time.Time, prefix string) {
	var got [msgLen]byte
	for i := uint64(0); len(pc.rtts) < maxSamples/pingConns && time.Now().Before(end) && r.ctx.Err() == nil; i++ {
		m := message(modePing, pc.id|i)
		t0 := time.Now()
		if _, err := pc.c.Write(m[:]); err != nil {
			pc.err = err
			r.fails.conn("%s: write: %v", strings.TrimSuffix(prefix, "_"), err)
			return
		}
		if _, err := io.ReadFull(pc.c, got[:]); err != nil {
			pc.err = err
			r.fails.conn("%s: read echo: %v", strings.TrimSuffix(prefix, "_"), err)
			return
		}
		pc.rtts = append(pc.rtts, time.Since(t0))
		if err := checkEcho(m[:], got[:]); err != nil {
			pc.err = err
			r.fails.data("%s: %v", strings.TrimSuffix(prefix, "_"), err)
			return
		}
	}
}

// percentiles adds the p50 and p99 of d, in µs.
func percentiles(m map[string]float64, prefix string, d []time.Duration) {
	slices.Sort(d)
	pct := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	m[prefix+"p50_us"] = pct(0.50)
	m[prefix+"p99_us"] = pct(0.99)
}

// moveToLoadCore pins a proxy to the load core for a one-core case.
func (r *runner) moveToLoadCore(ct *contender, name string) bool {
	if ct.proc == nil || r.loadCPU < 0 {
		return true
	}
	if err := pinProcess(ct.proc.Pid(), r.loadCPU); err != nil {
		r.fails.conn("%s: %v", name, err)
		return false
	}
	return true
}

func (r *runner) moveBack(ct *contender, name string) {
	if ct.proc == nil || r.loadCPU < 0 {
		return
	}
	if err := pinProcess(ct.proc.Pid(), r.proxyCPU); err != nil {
		r.fails.conn("%s: pin back: %v", name, err)
	}
}

// schedUse is what a proxy's threads have used of the CPUs so far.
type schedUse struct {
	cpu      time.Duration // run time
	switches int64         // times a thread was switched onto a CPU
}

// per divides the use since u0 by n operations: CPU µs and switches.
func (u schedUse) per(u0 schedUse, n int) (cpuUS, switches float64) {
	return float64((u.cpu - u0.cpu).Microseconds()) / float64(n), float64(u.switches-u0.switches) / float64(n)
}

// procSched sums /proc/PID/task/*/schedstat (zero without a process): run
// time and run count of each thread. Threads that exited are not counted:
// Go's and HAProxy's threads live as long as the process. A thread's run count grows by one each time it is switched
// onto a CPU, after blocking or after being preempted, so per operation it
// counts the hand-offs (wake-ups, context switches) the proxy needed,
// which unlike time does not grow with the machine's load.
func procSched(ct *contender) schedUse {
	var u schedUse
	if ct.proc == nil {
		return u
	}
	dir := filepath.Join("/proc", strconv.Itoa(ct.proc.Pid()), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return u
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) == 3 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			n, _ := strconv.ParseInt(f[2], 10, 64)
			u.cpu += time.Duration(ns)
			u.switches += n
		}
	}
	return u
}
