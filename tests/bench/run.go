package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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
	procs    []*process
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
	r.pin()
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

	pp := newPortPicker()
	port, err := pp.pick(backendIP, vipa)
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
	r.rounds(cts)
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
// and backends) on the second, with one Go thread running.
func (r *runner) pin() {
	cpus := allowedCPUs()
	if !r.cfg.Pin || len(cpus) < 2 {
		fmt.Fprintf(r.cfg.Err, "note: not pinned (%d CPUs allowed): proxies and load share the CPUs\n", len(cpus))
		return
	}
	r.proxyCPU, r.loadCPU = cpus[0], cpus[1]
	if err := pinProcess(os.Getpid(), r.loadCPU); err != nil {
		fmt.Fprintf(r.cfg.Err, "note: not pinned: %v\n", err)
		r.proxyCPU, r.loadCPU = -1, -1
		return
	}
	runtime.GOMAXPROCS(1)
	r.res.Machine.ProxyCPU, r.res.Machine.LoadCPU = r.proxyCPU, r.loadCPU
}

func (r *runner) wanted(name string) (want, explicit bool) {
	if len(r.cfg.Contenders) == 0 {
		return true, false
	}
	return slices.Contains(r.cfg.Contenders, name), true
}

// startContenders starts every wanted contender that can run here, in table
// order. A contender asked for by name that cannot run is a failure; one
// merely absent from this machine is a note.
func (r *runner) startContenders(pp *portPicker, port int) []*contender {
	var cts []*contender
	backend := net.JoinHostPort(backendIP, strconv.Itoa(port))
	add := func(ct *contender, err error) {
		if err == nil {
			err = r.up(ct)
		}
		if err != nil {
			r.fails.conn("%s: %v", ct.name, err)
			return
		}
		cts = append(cts, ct)
	}
	if want, _ := r.wanted(cDirect); want {
		add(&contender{name: cDirect, addr: backend, note: "client → backend, no proxy"}, nil)
	}
	wantDist, explicitDist := r.wanted(cDistribute)
	wantProxy, _ := r.wanted(cProxy)
	if wantDist || wantProxy {
		bin, err := r.caddy()
		if err != nil {
			r.fails.conn("caddy: %v", err)
			wantDist, wantProxy = false, false
		}
		if wantDist {
			if has, err := caddyHas(bin, distributeModule); err != nil || !has {
				msg := fmt.Sprintf("%s is not registered in ./cmd/caddy: distribute not measured", distributeModule)
				if err != nil {
					msg = err.Error()
				}
				if explicitDist || err != nil {
					r.fails.conn("%s", msg)
				} else {
					fmt.Fprintln(r.cfg.Err, "note: "+msg)
				}
				wantDist = false
			}
		}
		if wantDist {
			add(r.distribute(pp, bin, port))
		}
		if wantProxy {
			add(r.l4proxy(pp, bin, backend))
		}
	}
	if want, explicit := r.wanted(cHAProxy); want {
		bin, version := haproxyVersion()
		switch {
		case bin == "" && explicit:
			r.fails.conn("%s", haproxyHint)
		case bin == "":
			fmt.Fprintln(r.cfg.Err, "note: "+haproxyHint)
		default:
			add(r.haproxy(pp, bin, version, backend))
		}
	}
	return cts
}

// up starts the contender's process, if it has one, and waits until a byte
// passes through it; the process must sit on the proxy CPU.
func (r *runner) up(ct *contender) error {
	if ct.launch != nil {
		p, err := ct.launch()
		if p != nil {
			r.procs = append(r.procs, p)
			ct.proc = p
		}
		if err != nil {
			return err
		}
	}
	if err := waitReady(r.ctx, ct, 10*time.Second); err != nil {
		return err
	}
	if ct.proc != nil && r.proxyCPU >= 0 {
		if got := cpusAllowedList(ct.proc.pid()); got != strconv.Itoa(r.proxyCPU) {
			return fmt.Errorf("runs on CPUs %q, want %d", got, r.proxyCPU)
		}
	}
	return nil
}

// restart replaces the contender's process with a fresh one.
func (r *runner) restart(ct *contender) error {
	if ct.launch == nil {
		return nil
	}
	ct.proc.stop()
	return r.up(ct)
}

func (r *runner) caddy() (string, error) {
	if r.cfg.CaddyBin != "" {
		return r.cfg.CaddyBin, nil
	}
	r.say("building ./cmd/caddy ...")
	return buildCaddy(r.ctx, r.dir)
}

func (r *runner) distribute(pp *portPicker, bin string, port int) (*contender, error) {
	ct := &contender{name: cDistribute, addr: net.JoinHostPort(vipa, strconv.Itoa(port))}
	aport, err := pp.pick(proxyIP)
	if err != nil {
		return ct, err
	}
	gport, err := pp.pick(proxyIP)
	if err != nil {
		return ct, err
	}
	ct.admin = net.JoinHostPort(proxyIP, strconv.Itoa(aport))
	caddyfile := distributeCaddyfile(ct.admin, backendIP, net.JoinHostPort(proxyIP, strconv.Itoa(gport)), vipa, port)
	ct.launch = func() (*process, error) {
		p, err := startCaddy(bin, r.dir, cDistribute, caddyfile, r.proxyCPU)
		if err != nil {
			return nil, err
		}
		row, err := waitDPT(r.ctx, p, ct.admin, vipa, port, 10*time.Second)
		ct.note = fmt.Sprintf("./cmd/caddy, VIPA %s, DPT row %s ready=%d (listener watch)", ct.addr, row.Address, row.Ready)
		return p, err
	}
	return ct, nil
}

func (r *runner) l4proxy(pp *portPicker, bin, backend string) (*contender, error) {
	ct := &contender{name: cProxy, note: "./cmd/caddy, caddy-l4 v0.1.2 proxy handler"}
	lport, err := pp.pick(proxyIP)
	if err != nil {
		return ct, err
	}
	aport, err := pp.pick(proxyIP)
	if err != nil {
		return ct, err
	}
	ct.addr = net.JoinHostPort(proxyIP, strconv.Itoa(lport))
	ct.admin = net.JoinHostPort(proxyIP, strconv.Itoa(aport))
	caddyfile := proxyCaddyfile(ct.admin, ct.addr, backend)
	ct.launch = func() (*process, error) { return startCaddy(bin, r.dir, cProxy, caddyfile, r.proxyCPU) }
	return ct, nil
}

func (r *runner) haproxy(pp *portPicker, bin, version, backend string) (*contender, error) {
	ct := &contender{name: cHAProxy, note: version + ", mode tcp, nbthread 1"}
	lport, err := pp.pick(proxyIP)
	if err != nil {
		return ct, err
	}
	ct.addr = net.JoinHostPort(proxyIP, strconv.Itoa(lport))
	ct.launch = func() (*process, error) {
		return startHAProxy(bin, r.dir, ct.addr, backend, r.cfg.IdleConns+256, r.proxyCPU)
	}
	return ct, nil
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
	m := bc.run(r, ct)
	prof.Wait()
	r.res.add(bc, ct.name, m)
	r.say("%-6s %-8s %s", time.Since(r.start).Round(time.Second), fmt.Sprintf("%d/%d", round, r.cfg.Rounds), r.res.line(bc, ct.name, m))
	if m == nil && ct.proc != nil {
		// A failure must not cascade into the next cases: show why, start afresh.
		fmt.Fprintf(r.cfg.Err, "--- %s log, last warnings and errors:\n%s\n---\n", ct.name, ct.proc.logTail(10))
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
		r.procs[i].stop()
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
