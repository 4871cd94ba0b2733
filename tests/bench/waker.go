//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The one-core case moves the measured proxy onto the load core, which
// leaves the proxy core to the contenders waiting their turn. On the
// shared 2-core VM that matters: with nothing of ours waking on the proxy
// core, gorelay and l4relay made 348–1,094 one-core connections/s with a
// p99 of 8–27 ms; with a process there that wakes ten times a second
// (distribute's idle timers did it for every contender but distribute;
// `sleep 0.1` in a shell loop does it too) 2,381–2,601 with a p99 under
// 1 ms, in the same hour. So that every contender meets the same machine,
// a waker process sits on the proxy core for the one-core case.

// wakerEnv makes the bench binary run as the waker.
const wakerEnv = "CADDY_VIPA_BENCH_WAKER"

// wakerPeriod is how often the waker wakes: as often as distribute's
// listener watch and VIPA timers.
const wakerPeriod = 100 * time.Millisecond

// runWaker is the waker process: it sleeps and wakes until killed.
func runWaker() {
	for {
		time.Sleep(wakerPeriod)
	}
}

// startWaker runs the waker on the proxy core; nil when nothing is pinned
// or it cannot start (a note says so).
func (r *runner) startWaker() *harness.Process {
	if r.proxyCPU < 0 {
		return nil
	}
	exe, err := os.Executable()
	if err == nil {
		var p *harness.Process
		p, err = startProcess("waker", r.proxyCPU, filepath.Join(r.dir, "waker.log"), []string{wakerEnv + "=1"}, exe)
		if err == nil {
			return p
		}
	}
	fmt.Fprintf(r.cfg.Err, "note: no waker on the proxy core: %v\n", err)
	return nil
}
