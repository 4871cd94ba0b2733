//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// scenario is one fault or hostile input against real Caddy processes.
type scenario struct {
	name string
	long bool // runs only with -long
	what string
	run  func(ctx context.Context, e *env, r *result) error
}

// sizes are the counts of one run: the command's, or smaller in TestQuick.
type sizes struct {
	Held        int // connections held at once
	FDLimit     int // the routing node's RLIMIT_NOFILE in the exhaustion scenario
	FDClients   int // clients against that limit
	Rate        int // short connections per second beside a fault
	Streams     int // streaming connections cut or kept by a fault
	Reloads     int
	Silent      int           // clients that connect and say nothing
	Short       int           // short connections one after another
	Workers     int           // concurrent short connections
	GossipJunk  int           // junk datagrams and streams to the gossip port
	GossipStall int           // stalled state-channel streams
	Window      time.Duration // how long a load runs for a latency figure
}

var fullSizes = sizes{
	Held: 9000, FDLimit: 512, FDClients: 1000, Rate: 200, Streams: 40, Reloads: 10,
	Silent: 3000, Short: 100000, Workers: 32, GossipJunk: 10000, GossipStall: 4000, Window: 3 * time.Second,
}

// quickSizes keep TestQuick to under a minute on a busy 2-core machine.
var quickSizes = sizes{
	Held: 1000, FDLimit: 256, FDClients: 400, Rate: 100, Streams: 10, Reloads: 3,
	Silent: 500, Short: 3000, Workers: 16, GossipJunk: 1000, GossipStall: 300, Window: 1500 * time.Millisecond,
}

// result is a scenario's verdict and figures.
type result struct {
	name    string
	figures []string
	fails   []string
	took    time.Duration
	log     io.Writer
}

// figure records a measured value, printed with the verdict.
func (r *result) figure(format string, args ...any) {
	f := fmt.Sprintf(format, args...)
	r.figures = append(r.figures, f)
	fmt.Fprintf(r.log, "  %s: %s\n", r.name, f)
}

// fail records a broken expectation; the scenario goes on measuring.
func (r *result) fail(format string, args ...any) {
	f := fmt.Sprintf(format, args...)
	r.fails = append(r.fails, f)
	fmt.Fprintf(r.log, "  %s: FAIL %s\n", r.name, f)
}

// check fails unless ok.
func (r *result) check(ok bool, format string, args ...any) {
	if !ok {
		r.fail(format, args...)
	}
}

// env is what a scenario runs with; nodes and processes it starts are
// stopped when it returns.
type env struct {
	bin, dir string
	sz       sizes
	pp       *harness.PortPicker
	log      io.Writer
	scenario string
	key      string
	nodes    []*node
	procs    []*harness.Process
}

func (e *env) cleanup() {
	var wg sync.WaitGroup
	for _, n := range e.nodes {
		wg.Go(n.stop)
	}
	for _, p := range e.procs {
		wg.Go(p.Stop)
	}
	wg.Wait()
	e.nodes, e.procs = nil, nil
}

// config is one run of the suite.
type config struct {
	Long     bool
	Run      *regexp.Regexp
	Sizes    sizes
	CaddyBin string
	Keep     bool
	Log      io.Writer
}

// selected are the scenarios a run takes: the fast ones, and the long
// ones with -long; -run narrows either.
func selected(cfg config) []scenario {
	var out []scenario
	for _, s := range scenarios {
		if (s.long && !cfg.Long) || (cfg.Run != nil && !cfg.Run.MatchString(s.name)) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// runSuite runs the selected scenarios one after another.
func runSuite(ctx context.Context, cfg config) ([]*result, error) {
	dir, done, err := harness.RunDir("caddy-vipa-chaos-", cfg.Keep, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer done()
	bin, err := harness.CaddyBinary(ctx, cfg.CaddyBin, dir, cfg.Log)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	e := &env{bin: bin, dir: dir, sz: cfg.Sizes, pp: harness.NewPortPicker(), log: cfg.Log, key: base64.StdEncoding.EncodeToString(key)}
	var results []*result
	for _, s := range selected(cfg) {
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		fmt.Fprintf(cfg.Log, "%s: %s\n", s.name, s.what)
		r := &result{name: s.name, log: cfg.Log}
		e.scenario = s.name
		t0 := time.Now()
		err := s.run(ctx, e, r)
		e.cleanup()
		r.took = time.Since(t0)
		if err != nil {
			r.fail("%v", err)
		}
		results = append(results, r)
	}
	return results, nil
}

// table prints each scenario's verdict and figures.
func table(w io.Writer, results []*result) (failed int) {
	fmt.Fprintln(w, "| scenario | result | time | figures |")
	fmt.Fprintln(w, "|---|---|--:|---|")
	for _, r := range results {
		verdict := "pass"
		if len(r.fails) > 0 {
			verdict = "**FAIL**: " + strings.Join(r.fails, "; ")
			failed++
		}
		fmt.Fprintf(w, "| %s | %s | %.1f s | %s |\n", r.name, verdict, r.took.Seconds(), strings.Join(r.figures, "; "))
	}
	return failed
}

// loadAvg is the 1-minute load average, for the record of a noisy host.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
