//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// soakTrial: the owner stays alive for e.soak while one CPU burner per
// core saturates the host (processes unrelated to the fleet, as a
// neighbour's build would be) and the client connects at a tenth of the
// rate. Every second each node's /vipa/vipadyn row and ownership counter
// are read: any change of owner or status fails the trial.
func soakTrial(e env) (result, error) {
	f, err := startReadyFleet(e, true)
	if err != nil {
		return result{}, err
	}
	defer f.close()
	names := []string{"a", "b", "c"}
	rows, counts := map[string]vipadynRow{}, map[string]int{}
	for _, name := range names {
		r, n, err := f.ownership(name)
		if err != nil {
			return result{}, err
		}
		rows[name], counts[name] = r, n
	}
	burners, err := startBurners(runtime.NumCPU())
	if err != nil {
		return result{}, err
	}
	defer stopBurners(burners)
	p := startProber(f.lab.Client, vipaAddr(), max(e.rate/10, 1), time.Second)
	defer p.close()

	start := time.Now()
	fmt.Printf("soak: %d CPU burners for %s, load average %s\n", len(burners), e.soak, loadAvg())
	changed := 0
	for time.Since(start) < e.soak {
		time.Sleep(time.Second)
		for _, name := range names {
			r, n, err := f.ownership(name)
			if err != nil {
				// A starved admin endpoint is no ownership change.
				continue
			}
			if r != rows[name] || n != counts[name] {
				changed++
				fmt.Printf("soak: after %s caddy-%s changed: %+v (was %+v), ownership changes %d (was %d)\n",
					time.Since(start).Round(time.Second), name, r, rows[name], n, counts[name])
				rows[name], counts[name] = r, n
			}
		}
	}
	as := p.since(start)
	// The backups log their confirmations at most every 10 s, with totals.
	refuted, inconclusive := 0, 0
	for _, name := range []string{"b", "c"} {
		log, _ := os.ReadFile(f.nodes[name].Log)
		r, i := 0, 0
		for _, line := range strings.Split(string(log), "\n") {
			r = max(r, field(line, `"refuted_total":`))
			i = max(i, field(line, `"inconclusive_total":`))
		}
		refuted, inconclusive = refuted+r, inconclusive+i
	}
	fmt.Printf("soak: %s, load average %s; ownership changes %d; client: %d connections, %d failed; the backups' suspicions of a: %d refuted by the fleet, %d inconclusive (at least: logged every 10 s)\n",
		time.Since(start).Round(time.Second), loadAvg(), changed, len(as), failures(as), refuted, inconclusive)
	if changed > 0 {
		return result{}, fmt.Errorf("%d ownership changes with the owner alive", changed)
	}
	return result{failed: failures(as)}, nil
}

// field is the integer after key in a JSON log line, or 0.
func field(line, key string) int {
	i := strings.Index(line, key)
	if i < 0 {
		return 0
	}
	var n int
	_, _ = fmt.Sscan(line[i+len(key):], &n)
	return n
}

// ownership is the node's row for the VIPA and its ownership counter.
func (f *fleet) ownership(name string) (vipadynRow, int, error) {
	c := f.lab.Node(name).HTTPClient()
	var rows []vipadynRow
	if err := harness.GetJSON(c, netlab.Admin, "/vipa/vipadyn", &rows); err != nil {
		return vipadynRow{}, 0, err
	}
	var row vipadynRow
	for _, r := range rows {
		if r.VIPA == netlab.VIPA.String() {
			row = r
		}
	}
	page, err := harness.Get(c, netlab.Admin, "/metrics")
	if err != nil {
		return vipadynRow{}, 0, err
	}
	const series = "\ncaddy_vipa_ownership_changes_total "
	i := strings.Index(string(page), series)
	if i < 0 {
		return vipadynRow{}, 0, fmt.Errorf("caddy-%s: no ownership counter in /metrics", name)
	}
	var n float64
	if _, err := fmt.Sscan(string(page[i+len(series):]), &n); err != nil {
		return vipadynRow{}, 0, err
	}
	return row, int(n), nil
}

// startBurners starts n processes that spin until stopped (or until this
// one dies).
func startBurners(n int) ([]*exec.Cmd, error) {
	var out []*exec.Cmd
	for range n {
		c := exec.Command("sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			stopBurners(out)
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func stopBurners(cs []*exec.Cmd) {
	for _, c := range cs {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}
