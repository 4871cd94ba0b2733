//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The loopback layout: the load client on 127.0.0.1, proxies listening on
// 127.0.0.1 (distribute on the VIPA), backends on 127.0.0.2.
const (
	backendIP = "127.0.0.2"
	proxyIP   = "127.0.0.1"
	vipa      = "127.0.0.100"
	backendsN = 3
)

type config struct {
	Rounds     int
	Duration   time.Duration // per case, contender and round
	Cases      []string
	Contenders []string // empty: every contender available
	IdleConns  int
	Workers    int
	Settle     time.Duration // idle connections rest this long before the memory is read
	CaddyBin   string        // empty: build ./cmd/caddy
	Keep       bool          // keep the work directory: configs and proxy logs
	ProfileDir string        // empty: no CPU profiles
	GoEnv      []string      // KEY=VALUE added to the Go contenders' environment
	Pin        bool
	Out, Err   io.Writer
}

// runner holds one run: the backends, the contenders, the results.
type runner struct {
	cfg      config
	ctx      context.Context
	fails    *failures
	back     *backends
	dir      string
	proxyCPU int // -1: unpinned
	loadCPU  int
	seq      atomic.Uint64
	procs    []*harness.Process
	res      *results
	start    time.Time
}

func newRunner(ctx context.Context, cfg config) *runner {
	return &runner{cfg: cfg, ctx: ctx, fails: newFailures(cfg.Err), proxyCPU: -1, loadCPU: -1, res: newResults(cfg), start: time.Now()}
}

func (r *runner) seed() uint64 { return r.seq.Add(1) * 0x9e3779b97f4a7c15 }

func (r *runner) say(format string, a ...any) { fmt.Fprintf(r.cfg.Out, format+"\n", a...) }

// run measures every case on every contender and returns the results; the
// failures inside are what makes the exit code non-zero.
func run(ctx context.Context, cfg config) (*results, error) {
	r := newRunner(ctx, cfg)
	defer func() { r.res.Failures = r.fails.all() }()
	if err := r.limits(); err != nil {
		return r.res, err
	}
	defer r.pin()()
	dir, err := os.MkdirTemp("", "caddy-vipa-bench-")
	if err != nil {
		return r.res, err
	}
	r.dir = dir
	if cfg.Keep {
		fmt.Fprintf(cfg.Err, "note: configs and proxy logs are kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	defer r.stopAll()

	pp := harness.NewPortPicker()
	port, err := pp.Pick(backendIP, vipa)
	if err != nil {
		return r.res, err
	}
	if r.back, err = startBackends(backendIP, port, backendsN, r.fails); err != nil {
		return r.res, err
	}
	defer r.back.close()

	cts := r.startContenders(pp, port)
	for _, ct := range cts {
		r.res.Contenders = append(r.res.Contenders, ct.name)
		r.res.Notes[ct.name] = ct.note
	}
	r.res.header(r.cfg.Out)
	if len(cts) == 0 {
		return r.res, fmt.Errorf("no contender could be started")
	}
	r.warnIfBusy()
	r.rounds(cts)
	r.back.waitIdle(5 * time.Second) // let the last case end before the backends are cut
	return r.res, ctx.Err()
}

// limits raises the fd limit for the bench and, by inheritance, the proxies;
// the idle case holds two fds per connection here and two or more in the proxy.
func (r *runner) limits() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	// Setting it explicitly also stops os/exec from restoring the old soft limit in children.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	r.res.Machine.NoFile = int(lim.Cur)
	if most := (int(lim.Cur) - 256) / 2; r.cfg.IdleConns > most {
		fmt.Fprintf(r.cfg.Err, "note: RLIMIT_NOFILE is %d: the idle case holds %d connections instead of %d\n", lim.Cur, most, r.cfg.IdleConns)
		r.cfg.IdleConns = most
	}
	r.res.Config.IdleConns = r.cfg.IdleConns
	return nil
}

// pin puts the proxies on the first allowed CPU and this process (load client
// and backends) on the second, with one Go thread running. The returned
// func gives this process its CPUs and threads back, so that a run inside a
// longer-lived process (a test) leaves it as it found it.
func (r *runner) pin() (unpin func()) {
	cpus := allowedCPUs()
	if !r.cfg.Pin || len(cpus) < 2 {
		fmt.Fprintf(r.cfg.Err, "note: not pinned (%d CPUs allowed): proxies and load share the CPUs\n", len(cpus))
		return func() {}
	}
	allowed, err := getAffinity(0)
	if err != nil {
		fmt.Fprintf(r.cfg.Err, "note: not pinned: %v\n", err)
		return func() {}
	}
	if err := pinProcess(os.Getpid(), cpus[1]); err != nil {
		fmt.Fprintf(r.cfg.Err, "note: not pinned: %v\n", err)
		setProcessAffinity(os.Getpid(), allowed)
		return func() {}
	}
	r.proxyCPU, r.loadCPU = cpus[0], cpus[1]
	procs := runtime.GOMAXPROCS(1)
	r.res.Machine.ProxyCPU, r.res.Machine.LoadCPU = r.proxyCPU, r.loadCPU
	return func() {
		if err := setProcessAffinity(os.Getpid(), allowed); err != nil {
			fmt.Fprintf(r.cfg.Err, "note: %v\n", err)
		}
		runtime.GOMAXPROCS(procs)
	}
}

// rounds runs the cases interleaved: within a round every contender runs a
// case before the next case starts, so drift over time hits all alike.
func (r *runner) rounds(cts []*contender) {
	for round := 1; round <= r.cfg.Rounds && r.ctx.Err() == nil; round++ {
		for _, bc := range allCases {
			if !slices.Contains(r.cfg.Cases, bc.name) {
				continue
			}
			for _, ct := range cts {
				if r.ctx.Err() != nil {
					return
				}
				r.measure(round, bc, ct)
			}
		}
	}
}

func (r *runner) measure(round int, bc benchCase, ct *contender) {
	label := fmt.Sprintf("round %d %s via %s", round, bc.name, ct.name)
	r.fails.setLabel(label)
	defer r.fails.setLabel("between cases")
	if ct.broken {
		return
	}
	if !r.back.waitIdle(10 * time.Second) {
		r.fails.conn("backends still busy from the previous case")
	}
	// The idle case reads memory growth: a fresh proxy gives every contender
	// the same baseline, unaffected by pools and heaps grown by earlier cases.
	if bc.name == "idle" && !r.fresh(ct) {
		return
	}
	prof := r.profile(round, bc, ct)
	before := readCPUTimes()
	m := bc.run(r, ct)
	if bc.name != "idle" && !bc.oneCore {
		r.cpuMetrics(bc.name, before, readCPUTimes(), m)
		if ct.proc != nil {
			proxyCPU(m)
		}
	}
	prof.Wait()
	r.res.add(ct.name, m)
	r.say("%-6s %-8s %s", time.Since(r.start).Round(time.Second), fmt.Sprintf("%d/%d", round, r.cfg.Rounds), r.res.line(bc, ct.name, m))
	if m == nil && ct.proc != nil {
		// A failure must not cascade into the next cases: show why, start afresh.
		fmt.Fprintf(r.cfg.Err, "--- %s log, last warnings and errors:\n%s\n---\n", ct.name, harness.LogTail(ct.proc.Log, 10))
		r.fresh(ct)
	}
}

// fresh restarts a contender's process; a contender that cannot restart is
// out of the run.
func (r *runner) fresh(ct *contender) bool {
	if err := r.restart(ct); err != nil {
		r.fails.conn("restart %s: %v; no further measurements of it", ct.name, err)
		ct.broken = true
		return false
	}
	return true
}

// profile takes a CPU profile of a Caddy contender during round 1 of the
// data cases, when asked to.
func (r *runner) profile(round int, bc benchCase, ct *contender) *sync.WaitGroup {
	var wg sync.WaitGroup
	if r.cfg.ProfileDir == "" || round != 1 || ct.admin == "" || bc.name == "idle" {
		return &wg
	}
	secs := max(1, int(r.cfg.Duration.Seconds()))
	path := filepath.Join(r.cfg.ProfileDir, fmt.Sprintf("%s-%s.pprof", ct.name, bc.name))
	wg.Go(func() {
		if err := fetchProfile(ct.admin, secs, path); err != nil {
			fmt.Fprintf(r.cfg.Err, "note: profile %s: %v\n", path, err)
		}
	})
	return &wg
}

func (r *runner) stopAll() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].Stop()
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
