//go:build linux

// Command failover measures how long a VIPA is unreachable when its
// routing node goes away, in network namespaces on this host (a bridge,
// three Caddy nodes, a client): a owns the VIPA, b and c are its backups
// of ranks 200 and 100. A client opens new connections through the VIPA
// at a steady rate throughout; each trial reports the time from the event
// to the first new connection that succeeds after they began failing,
// and how many failed. keepalived with VRRP's default timers is measured the same way for
// comparison. Needs root.
//
//	go run ./tests/failover                      # every scenario, 10 trials each
//	go run ./tests/failover -run 'kill' -trials 3
//	go run ./tests/failover -run soak            # once, 10 minutes (-soak-duration)
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// scenario is one kind of event, measured over trials.
type scenario struct {
	name, what string
	trial      func(env) (result, error)
	// once: one trial whatever -trials says, and only when -run names it.
	once bool
}

// result is one trial's: the outage (summed over its events), the
// connections that failed inside it, and those that failed outside it.
type result struct {
	gap           time.Duration
	failed, stray int
	strays        []string // each failure outside the outages: when, relative to the trial's marks, and why
	marks         []string // the trial's marks, relative to the first, when a failure came outside the outages
}

// env is what a trial has.
type env struct {
	bin, dir string
	rate     int
	timeout  time.Duration
	soak     time.Duration
}

var scenarios = []scenario{
	{"kill-fast", "SIGKILL of the owner, fast profile: b takes over", func(e env) (result, error) {
		return caddyTrial(e, true, syscall.SIGKILL, false)
	}, false},
	{"kill-default", "SIGKILL of the owner, default profile", func(e env) (result, error) {
		return caddyTrial(e, false, syscall.SIGKILL, false)
	}, false},
	{"stop-fast", "graceful stop (SIGTERM) of the owner, fast profile", func(e env) (result, error) {
		return caddyTrial(e, true, syscall.SIGTERM, false)
	}, false},
	{"second-fast", "SIGKILL of b after it took over from a: c takes over", func(e env) (result, error) {
		return caddyTrial(e, true, syscall.SIGKILL, true)
	}, false},
	{"sequence-fast", "kill a, kill b, restart both: a takes back (when_idle)", sequenceTrial, false},
	{"keepalived", "keepalived, VRRP defaults: SIGKILL of the master with its application", keepalivedTrial, false},
	{"soak", "owner alive, both cores saturated by CPU burners, fast profile: no ownership change", soakTrial, true},
}

func main() { os.Exit(run()) }

func run() int {
	trials := flag.Int("trials", 10, "trials per scenario")
	rate := flag.Int("rate", 200, "new client connections per second during each trial")
	runRE := flag.String("run", "", "only the scenarios whose name matches this regexp")
	bin := flag.String("caddy", "", "use this Caddy binary instead of building ./cmd/caddy")
	verbose := flag.Bool("v", false, "list each connection that failed outside the outages, when and why, and the marks of its trial")
	soak := flag.Duration("soak-duration", 10*time.Minute, "how long the soak scenario keeps the owner alive under CPU load")
	keep := flag.Bool("keep", false, "keep the nodes' logs (printed: the directory)")
	flag.Parse()
	re, err := regexp.Compile(*runRE)
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover: -run:", err)
		return 2
	}
	ctx, cancel := harness.RunContext("failover", 2*time.Hour)
	defer cancel()
	dir, err := os.MkdirTemp("", "caddy-vipa-failover-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		return 1
	}
	if *keep {
		fmt.Printf("logs in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if *bin == "" {
		if *bin, err = harness.BuildCaddy(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, "failover:", err)
			return 1
		}
	}
	e := env{bin: *bin, rate: *rate, timeout: 250 * time.Millisecond, soak: *soak}
	fmt.Printf("load average %s; %d trials; client: %d new connections/s, each bounded by %s\n",
		loadAvg(), *trials, e.rate, e.timeout)
	fmt.Printf("%-13s %5s  %-28s %-20s %-12s  %s\n", "scenario", "ok", "outage min/med/max", "failed in it", "outside it", "what")
	code := 0
	for _, s := range scenarios {
		if !re.MatchString(s.name) || s.once && *runRE == "" {
			continue
		}
		n := *trials
		if s.once {
			n = 1
		}
		var gaps []time.Duration
		var failed, stray []int
		var errs []string
		for i := range n {
			if ctx.Err() != nil {
				return 1
			}
			e.dir = fmt.Sprintf("%s/%s-%d", dir, s.name, i)
			if err := os.MkdirAll(e.dir, 0o700); err != nil {
				fmt.Fprintln(os.Stderr, "failover:", err)
				return 1
			}
			r, err := s.trial(e)
			if errors.Is(err, netlab.ErrUnavailable) {
				fmt.Fprintln(os.Stderr, "failover:", err)
				return 1
			}
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			gaps = append(gaps, r.gap)
			failed = append(failed, r.failed)
			stray = append(stray, r.stray)
			if *verbose {
				for _, m := range r.strays {
					fmt.Printf("    %s trial %d: failed outside the outages: %s\n", s.name, i, m)
				}
				if len(r.strays) > 0 {
					fmt.Printf("    %s trial %d: marks: %s\n", s.name, i, strings.Join(r.marks, "; "))
				}
			}
		}
		fmt.Printf("%-13s %2d/%-2d  %-28s %-20s %-12s  %s\n", s.name, len(gaps), n, durations(gaps), counts(failed), counts(stray), s.what)
		for _, m := range errs {
			fmt.Printf("    failed trial: %s\n", m)
			code = 1
		}
	}
	fmt.Printf("load average %s\n", loadAvg())
	return code
}

// caddyTrial starts a fleet, waits until a owns the VIPA and its backups
// are ready, then sends sig to a (and, for second, to b once it took
// over) and measures the client's outage.
func caddyTrial(e env, fast bool, sig syscall.Signal, second bool) (result, error) {
	f, err := startReadyFleet(e, fast)
	if err != nil {
		return result{}, err
	}
	defer f.close()
	p := startProber(f.lab.Client, vipaAddr(), e.rate, e.timeout)
	defer p.close()
	var w windows
	if second {
		if err := w.event(p, func() error { return f.nodes["a"].Signal(syscall.SIGKILL) }); err != nil {
			return result{}, fmt.Errorf("b did not take over: %w", err)
		}
		if err := f.wait(map[string]string{"b": "active", "c": "backup"}, 30*time.Second); err != nil {
			return result{}, err
		}
		time.Sleep(2 * time.Second)
		w = windows{} // the figure is c's takeover
	}
	victim := map[bool]string{false: "a", true: "b"}[second]
	if err := w.event(p, func() error { return f.nodes[victim].Signal(sig) }); err != nil {
		return result{}, err
	}
	time.Sleep(2 * time.Second) // connections after the outage count as stray if they fail
	return w.result(p), nil
}

// sequenceTrial: a killed, then b; both restarted, a takes the VIPA back
// (when_idle: no connection stays open, so at once). Under load
// throughout, no connection may fail outside the two outages.
func sequenceTrial(e env) (result, error) {
	f, err := startReadyFleet(e, true)
	if err != nil {
		return result{}, err
	}
	defer f.close()
	p := startProber(f.lab.Client, vipaAddr(), e.rate, e.timeout)
	defer p.close()
	var w windows
	stopNeigh := w.watchNeigh(f)
	defer stopNeigh()
	for _, step := range []struct{ victim, next string }{{"a", "b"}, {"b", "c"}} {
		if err := w.event(p, func() error { return f.nodes[step.victim].Signal(syscall.SIGKILL) }); err != nil {
			return result{}, fmt.Errorf("after %s's kill: %w", step.victim, err)
		}
		if err := f.wait(map[string]string{step.next: "active"}, 30*time.Second); err != nil {
			return result{}, err
		}
		time.Sleep(2 * time.Second)
	}
	w.mark("a, b restarting")
	for _, name := range []string{"a", "b"} {
		if err := f.start(f.configs[name]); err != nil {
			return result{}, err
		}
	}
	w.mark("a, b started")
	if err := f.wait(map[string]string{"a": "active", "b": "backup", "c": "backup"}, 60*time.Second); err != nil {
		return result{}, err
	}
	w.mark("a active seen")
	time.Sleep(2 * time.Second)
	return w.result(p), nil
}

func keepalivedTrial(e env) (result, error) {
	v, err := startVRRP(e.dir)
	if err != nil {
		return result{}, err
	}
	defer v.close()
	time.Sleep(2 * time.Second)
	p := startProber(v.lab.Client, vipaAddr(), e.rate, e.timeout)
	defer p.close()
	var w windows
	if err := w.event(p, func() error { v.crash(); return nil }); err != nil {
		return result{}, err
	}
	time.Sleep(2 * time.Second)
	return w.result(p), nil
}

// windows are a trial's outages: from each event to the first success
// after connections began failing.
type windows struct {
	mu     sync.Mutex // guards marks
	spans  [][2]time.Time
	gap    time.Duration
	failed int
	marks  []mark
}

// mark is a named moment of a trial, to place failures by.
type mark struct {
	at   time.Time
	what string
}

func (w *windows) mark(what string) {
	w.mu.Lock()
	w.marks = append(w.marks, mark{time.Now(), what})
	w.mu.Unlock()
}

// watchNeigh marks each change of the client's neighbour entry for the
// VIPA (which node's MAC it holds), polled every 20 ms, until stopped.
func (w *windows) watchNeigh(f *fleet) (stop func()) {
	names := map[string]string{"": "none"}
	for _, h := range f.lab.Nodes {
		names[h.MAC] = h.Name
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		last := "?"
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			mac, err := f.lab.Client.Neigh(netlab.VIPA.String())
			if err != nil {
				continue
			}
			if n := names[mac]; n != last {
				w.mark("client's entry → " + n)
				last = n
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// list is the marks in order, each with its time after the first.
func (w *windows) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	slices.SortStableFunc(w.marks, func(x, y mark) int { return x.at.Compare(y.at) })
	out := []string{fmt.Sprintf("(first at %.3f Unix)", float64(w.marks[0].at.UnixNano())/1e9)}
	for _, m := range w.marks {
		out = append(out, fmt.Sprintf("%s %s", m.at.Sub(w.marks[0].at).Round(time.Millisecond), m.what))
	}
	return out
}

// place says when t was: after which mark, and how long after it.
func (w *windows) place(t time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := "before every mark"
	slices.SortStableFunc(w.marks, func(x, y mark) int { return x.at.Compare(y.at) })
	for _, m := range w.marks {
		if !t.Before(m.at) {
			out = fmt.Sprintf("%s after %s", t.Sub(m.at).Round(time.Millisecond), m.what)
		}
	}
	return out
}

// event causes one outage through do and waits for its end.
func (w *windows) event(p *prober, do func() error) error {
	t0 := time.Now()
	if err := do(); err != nil {
		return err
	}
	w.mu.Lock()
	w.marks = append(w.marks, mark{t0, fmt.Sprintf("event %d", len(w.spans)+1)})
	w.mu.Unlock()
	gap, failed, err := measure(p, t0, 60*time.Second)
	if err != nil {
		return err
	}
	w.spans = append(w.spans, [2]time.Time{t0, t0.Add(gap)})
	w.mu.Lock()
	w.marks = append(w.marks, mark{t0.Add(gap), fmt.Sprintf("outage %d's end", len(w.spans))})
	w.mu.Unlock()
	w.gap += gap
	w.failed += failed
	return nil
}

// result counts, beside the outages, the failed attempts that were
// outside every one of them: an attempt under way when an outage began (a
// connection through the killed node, cut by its death) is inside it.
func (w *windows) result(p *prober) result {
	r := result{gap: w.gap, failed: w.failed}
	if len(w.spans) == 0 {
		return r
	}
outer:
	for _, a := range p.since(w.spans[0][0]) {
		if a.ok {
			continue
		}
		for _, s := range w.spans {
			if a.start.Before(s[1]) && !a.end.Before(s[0]) {
				continue outer
			}
		}
		r.stray++
		r.strays = append(r.strays, fmt.Sprintf("%s (%s)", w.place(a.start), a.err))
	}
	if r.stray > 0 {
		r.marks = w.list()
	}
	return r
}

// measure waits until the outage that began at t0 has ended.
func measure(p *prober, t0 time.Time, d time.Duration) (time.Duration, int, error) {
	deadline := time.Now().Add(d)
	for {
		if gap, failed, done := outage(p.since(t0), t0, 3*time.Second); done {
			return gap, failed, nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("no connection through the VIPA succeeded within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	slices.Sort(ds)
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("%s / %s / %s", r(ds[0]), r(ds[len(ds)/2]), r(ds[len(ds)-1]))
}

func counts(ns []int) string {
	if len(ns) == 0 {
		return "-"
	}
	slices.Sort(ns)
	return fmt.Sprintf("%d / %d / %d", ns[0], ns[len(ns)/2], ns[len(ns)-1])
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
