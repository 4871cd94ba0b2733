//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// metric is one row of the result table.
type metric struct {
	key, title, unit string
	lower            bool // lower is better
	prec             int  // decimals printed
}

// benchCase is one measurement; run returns its metrics, or nil when the
// measurement failed (the failure is already reported).
type benchCase struct {
	name    string
	metrics []metric
	run     func(r *runner, ct *contender) map[string]float64
	oneCore bool // the proxy shares the load core: no busy shares
}

var allCases = []benchCase{
	{"upload", []metric{
		{"upload_gbps", "bulk upload, 1 conn", "Gbit/s", false, 2},
		{"upload_cpu_ms_gb", "proxy CPU per GB uploaded", "ms", true, 0},
	}, (*runner).upload, false},
	{"download", []metric{
		{"download_gbps", "bulk download, 1 conn", "Gbit/s", false, 2},
		{"download_cpu_ms_gb", "proxy CPU per GB downloaded", "ms", true, 0},
	}, (*runner).download, false},
	{"connrate", []metric{
		{"conn_per_s", "connect+64B+close, 32 workers", "conn/s", false, 0},
		{"conn_cpu_us", "proxy CPU per connection", "µs", true, 1},
	}, (*runner).connRate, false},
	{"pingpong", []metric{
		{"pingpong_p50_us", "64B ping-pong p50, one core", "µs", true, 1},
		{"pingpong_p99_us", "64B ping-pong p99, one core", "µs", true, 1},
	}, (*runner).pingPong, true},
	{"conn1", []metric{
		{"conn1_per_s", "connect+64B+close, 1 client", "conn/s", false, 0},
		{"conn1_p50_us", "  connect-to-reply p50", "µs", true, 1},
		{"conn1_p99_us", "  connect-to-reply p99", "µs", true, 1},
		{"conn1_cpu_us", "  proxy CPU per connection", "µs", true, 1},
		{"conn1_switches", "  proxy thread switches per connection", "", true, 2},
	}, (*runner).conn1Split, false},
	{"conn1core", []metric{
		{"conn1core_per_s", "connect+64B+close, 1 client, one core", "conn/s", false, 0},
		{"conn1core_p50_us", "  connect-to-reply p50", "µs", true, 1},
		{"conn1core_p99_us", "  connect-to-reply p99", "µs", true, 1},
		{"conn1core_cpu_us", "  proxy CPU per connection", "µs", true, 1},
		{"conn1core_switches", "  proxy thread switches per connection", "", true, 2},
	}, (*runner).conn1Core, true},
	{"pingpong1", []metric{
		{"pp1_p50_us", "64B ping-pong, 1 conn: p50", "µs", true, 1},
		{"pp1_p99_us", "  p99", "µs", true, 1},
		{"pp1_cpu_us", "  proxy CPU per message", "µs", true, 1},
		{"pp1_switches", "  proxy thread switches per message", "", true, 2},
	}, (*runner).pingPong1, false},
	{"pingpong64", []metric{
		{"pp64_per_s", "64B ping-pong, 64 conns", "msg/s", false, 0},
		{"pp64_p50_us", "  p50", "µs", true, 1},
		{"pp64_p99_us", "  p99", "µs", true, 1},
		{"pp64_cpu_us", "  proxy CPU per message", "µs", true, 1},
		{"pp64_switches", "  proxy thread switches per message", "", true, 2},
	}, (*runner).pingPong64, false},
	{"idle", []metric{
		{"idle_rss_kb", "proxy RSS per idle conn", "KiB", true, 1},
		{"idle_pipes", "proxy pipes per idle conn", "pipes", true, 2},
		{"idle_fds", "proxy fds per idle conn", "fds", true, 2},
		{"idle_kernel_kb", "kernel slab per idle conn, system-wide", "KiB", true, 1},
	}, (*runner).idle, false},
}

const (
	ioSlack     = 5 * time.Second // how long a bulk transfer may lag behind the case's duration
	connTimeout = 3 * time.Second // dial, and one short exchange: a SYN retransmit fits, a dead proxy does not
)

func dial(addr string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp4", addr, connTimeout)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func gbps(n int64, d time.Duration) float64 { return float64(n) * 8 / d.Seconds() / 1e9 }

// upload: the client streams for the duration, half-closes, and the backend
// answers with its count and verdict.
func (r *runner) upload(ct *contender) map[string]float64 {
	c, err := dial(ct.addr)
	if err != nil {
		r.fails.conn("upload: dial %s: %v", ct.addr, err)
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(r.cfg.Duration + ioSlack))
	seed := r.seed()
	start := time.Now()
	if _, err := c.Write(bulkHeader(modeUpload, 0, seed)); err != nil {
		r.fails.conn("upload: header: %v", err)
		return nil
	}
	s := newSender(seed)
	for time.Since(start) < r.cfg.Duration && r.ctx.Err() == nil {
		n, err := c.Write(s.next())
		s.advance(n)
		if err != nil {
			r.fails.conn("upload: write after %d bytes: %v", s.n, err)
			return nil
		}
	}
	if err := c.CloseWrite(); err != nil {
		r.fails.conn("upload: half-close: %v", err)
		return nil
	}
	reply := make([]byte, replyLen)
	if _, err := io.ReadFull(c, reply); err != nil {
		r.fails.conn("upload: no reply from the backend after half-close: %v", err)
		return nil
	}
	elapsed := time.Since(start)
	got, bad := parseUploadReply(reply)
	ok := true
	if bad >= 0 {
		r.fails.data("upload: backend found byte at stream offset %d differing from what the client sent", bad)
		ok = false
	}
	if got != s.n {
		r.fails.data("upload: backend received %d bytes, client wrote %d", got, s.n)
		ok = false
	}
	if !r.expectEOF(c, "upload") || !ok {
		return nil
	}
	return map[string]float64{"upload_gbps": gbps(s.n, elapsed)}
}

// download: the backend streams for the duration and half-closes; the client
// verifies every byte and returns its count, which the backend checks.
func (r *runner) download(ct *contender) map[string]float64 {
	c, err := dial(ct.addr)
	if err != nil {
		r.fails.conn("download: dial %s: %v", ct.addr, err)
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(r.cfg.Duration + ioSlack))
	seed := r.seed()
	start := time.Now()
	if _, err := c.Write(bulkHeader(modeDownload, r.cfg.Duration, seed)); err != nil {
		r.fails.conn("download: header: %v", err)
		return nil
	}
	ck := newChecker(seed)
	buf := make([]byte, chunkLen)
	for {
		n, err := c.Read(buf)
		ck.check(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			r.fails.conn("download: read after %d bytes: %v", ck.n, err)
			return nil
		}
	}
	elapsed := time.Since(start)
	var cnt [8]byte
	binary.LittleEndian.PutUint64(cnt[:], uint64(ck.n))
	if _, err := c.Write(cnt[:]); err != nil {
		r.fails.conn("download: send count after the backend's half-close: %v", err)
		return nil
	}
	c.CloseWrite()
	eof := r.expectEOF(c, "download") // the backend closes once it checked the count
	if ck.bad >= 0 {
		r.fails.data("download: client found byte at stream offset %d differing from what the backend sent", ck.bad)
		return nil
	}
	if !eof {
		return nil
	}
	return map[string]float64{"download_gbps": gbps(ck.n, elapsed)}
}

// expectEOF reads the end of a connection; bytes there were never sent.
func (r *runner) expectEOF(c *net.TCPConn, what string) bool {
	var b [1]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		r.fails.data("%s: unexpected byte %#x after the end of the exchange", what, b[0])
		return false
	case err != io.EOF:
		r.fails.conn("%s: waiting for the backend's close: %v", what, err)
		return false
	}
	return true
}

// connRate: workers each loop connect, 64-byte exchange, close.
func (r *runner) connRate(ct *contender) map[string]float64 {
	var done atomic.Int64
	var errs errCount
	run := r.seed() << 48
	start := time.Now()
	end := start.Add(r.cfg.Duration)
	var wg sync.WaitGroup
	for w := range r.cfg.Workers {
		wg.Go(func() {
			for i := uint64(0); time.Now().Before(end) && r.ctx.Err() == nil; i++ {
				if err := r.exchange(ct.addr, run|uint64(w)<<32|i); err != nil {
					errs.add(err)
					time.Sleep(10 * time.Millisecond) // a failing proxy is not hammered
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n, first := errs.get(); n > 0 {
		r.fails.conn("connrate: %d of %d connections failed; the first: %v", n, int64(n)+done.Load(), first)
		return nil
	}
	return map[string]float64{"conn_per_s": float64(done.Load()) / elapsed.Seconds()}
}

// exchange is one connection of the connection-rate case. A wrong echo is
// reported here; other errors are counted by the caller.
func (r *runner) exchange(addr string, id uint64) error {
	c, err := dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(connTimeout))
	m := message(modeExchange, id)
	if _, err := c.Write(m[:]); err != nil {
		return err
	}
	var got [msgLen]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := checkEcho(m[:], got[:]); err != nil {
		r.fails.data("connrate: %v", err)
		return err
	}
	return nil
}

// errCount counts the failed connections of a case and keeps the first error:
// one line says what ten thousand would.
type errCount struct {
	mu    sync.Mutex
	n     int
	first error
}

func (e *errCount) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n++; e.first == nil {
		e.first = err
	}
}

func (e *errCount) get() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n, e.first
}

// maxSamples bounds the ping-pong loop in count as the duration does in time.
const maxSamples = 2_000_000

// pingPong: one connection, 64-byte messages echoed one at a time, with the
// proxy moved to the load core: every hop pays a context switch, none a
// cross-core wake-up.
func (r *runner) pingPong(ct *contender) map[string]float64 {
	if ct.proc != nil && r.loadCPU >= 0 {
		if err := pinProcess(ct.proc.Pid(), r.loadCPU); err != nil {
			r.fails.conn("pingpong: %v", err)
			return nil
		}
		defer func() {
			if err := pinProcess(ct.proc.Pid(), r.proxyCPU); err != nil {
				r.fails.conn("pingpong: pin back: %v", err)
			}
		}()
	}
	c, err := dial(ct.addr)
	if err != nil {
		r.fails.conn("pingpong: dial %s: %v", ct.addr, err)
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(r.cfg.Duration + ioSlack))
	run := r.seed() << 32
	rtts := make([]time.Duration, 0, 1<<16)
	var got [msgLen]byte
	start := time.Now()
	for i := uint64(0); i < maxSamples && time.Since(start) < r.cfg.Duration && r.ctx.Err() == nil; i++ {
		m := message(modePing, run|i)
		t0 := time.Now()
		if _, err := c.Write(m[:]); err != nil {
			r.fails.conn("pingpong: write: %v", err)
			return nil
		}
		if _, err := io.ReadFull(c, got[:]); err != nil {
			r.fails.conn("pingpong: read echo: %v", err)
			return nil
		}
		rtts = append(rtts, time.Since(t0))
		if err := checkEcho(m[:], got[:]); err != nil {
			r.fails.data("pingpong: %v", err)
			return nil
		}
	}
	if len(rtts) == 0 {
		return nil
	}
	slices.Sort(rtts)
	pct := func(p float64) float64 { return float64(rtts[int(p*float64(len(rtts)-1))].Nanoseconds()) / 1e3 }
	return map[string]float64{"pingpong_p50_us": pct(0.50), "pingpong_p99_us": pct(0.99)}
}

const (
	idleOpeners     = 16 // connections of the idle case opened at once
	maxIdleFailures = 32 // the idle case stops opening after this many failures
)

// idle holds N connections open end to end and measures what they cost the
// proxy: RSS, fds, pipes; and the kernel's unreclaimable slab, system-wide
// (direct shows the client's and backends' share of it).
func (r *runner) idle(ct *contender) map[string]float64 {
	n := r.cfg.IdleConns
	before, err := r.snapshot(ct)
	if err != nil {
		r.fails.conn("idle: %v", err)
		return nil
	}
	conns := make([]*net.TCPConn, n)
	var next atomic.Int64
	var errs errCount
	var wg sync.WaitGroup
	for range idleOpeners {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n) && r.ctx.Err() == nil; i = next.Add(1) - 1 {
				if failed, _ := errs.get(); failed >= maxIdleFailures {
					return
				}
				c, err := r.openIdle(ct.addr)
				if err != nil {
					errs.add(err)
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	defer r.closeIdle(ct, conns, before)
	held := 0
	for _, c := range conns {
		if c != nil {
			held++
		}
	}
	failed, first := errs.get()
	if held == 0 {
		r.fails.conn("idle: no connection established through %s; the first error: %v", ct.name, first)
		return nil
	}
	sleepCtx(r.ctx, r.cfg.Settle)
	after, err := r.snapshot(ct)
	if err != nil {
		r.fails.conn("idle: %v", err)
		return nil
	}
	per := func(a, b float64) float64 { return (a - b) / float64(held) }
	m := map[string]float64{"idle_kernel_kb": per(after.kernel, before.kernel)}
	if ct.proc != nil {
		m["idle_rss_kb"] = per(after.rss, before.rss)
		m["idle_fds"] = per(float64(after.fds), float64(before.fds))
		m["idle_pipes"] = per(float64(after.pipes), float64(before.pipes))
	}
	if held < n {
		// Not a result, but what the held ones cost tells why the rest failed.
		r.fails.conn("idle: %d of %d connections established through %s before %d failed (the first: %v); those held cost %.1f KiB RSS, %.2f fds, %.2f pipes each",
			held, n, ct.name, failed, first, m["idle_rss_kb"], m["idle_fds"], m["idle_pipes"])
		return nil
	}
	return m
}

// openIdle establishes one idle connection: a byte each way proves the
// proxy has connected it through to a backend.
func (r *runner) openIdle(addr string) (*net.TCPConn, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(connTimeout))
	var b [1]byte
	_, err = c.Write([]byte{modeIdle})
	if err == nil {
		_, err = io.ReadFull(c, b[:])
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	if b[0] != idleReply {
		r.fails.data("idle: reply %#x, want %#x", b[0], idleReply)
		c.Close()
		return nil, errors.New("bad reply")
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// closeIdle ends the idle case and waits, bounded, until the proxy has let go
// of the connections, so the next measurement starts clean.
func (r *runner) closeIdle(ct *contender, conns []*net.TCPConn, before snapshot) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	r.back.waitIdle(10 * time.Second)
	if ct.proc == nil {
		return
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if fds, _, err := fdCount(ct.proc.Pid()); err != nil || fds <= before.fds+8 {
			return
		}
	}
}

// snapshot is what the idle case compares before and after.
type snapshot struct {
	rss, kernel float64
	fds, pipes  int
}

func (r *runner) snapshot(ct *contender) (snapshot, error) {
	s := snapshot{kernel: kernelKB()}
	if ct.proc == nil {
		return s, nil
	}
	var err error
	if s.rss, err = rssKB(ct.proc.Pid()); err != nil {
		return s, err
	}
	s.fds, s.pipes, err = fdCount(ct.proc.Pid())
	return s, err
}
