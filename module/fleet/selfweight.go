package fleet

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// The weight a target reports for itself, for distmethod targetweight:
// fixed by config, or with weight auto derived from the host's spare CPU
// capacity, the idle share of /proc/stat's CPU time over each window,
// scaled to 1-100. The weight published moves only when the measure moves
// by weightStep points or more, so a report changes rarely.

const (
	// weightWindow is how often the CPU times are read; the weight is the
	// idle share of the window between two reads.
	weightWindow = 5 * time.Second
	// weightStep is the change of measured weight that is published.
	weightStep = 10
	// weightUnmeasured is the weight auto reports without /proc/stat.
	weightUnmeasured = vipa.MaxWeight
)

// cpuTimes are the host's cumulative CPU times in clock ticks.
type cpuTimes struct {
	idle  uint64 // idle and iowait
	total uint64 // user, nice, system, idle, iowait, irq, softirq, steal
}

var errProcStat = errors.New("/proc/stat: no aggregate cpu line")

// parseProcStat reads the aggregate "cpu" line of /proc/stat. Guest time
// is left out: the kernel counts it in user time already.
func parseProcStat(b []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return cpuTimes{}, errProcStat
	}
	var t cpuTimes
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return cpuTimes{}, errProcStat
		}
		t.total += v
		if i == 3 || i == 4 { // idle, iowait
			t.idle += v
		}
	}
	return t, nil
}

// weightOf is the idle share of the CPU time between two reads, scaled to
// 1-100; ok is false when no time passed (or the counters went back).
func weightOf(prev, cur cpuTimes) (w int, ok bool) {
	if cur.total <= prev.total || cur.idle < prev.idle {
		return 0, false
	}
	dt, di := cur.total-prev.total, min(cur.idle-prev.idle, cur.total-prev.total)
	w = int((di*100 + dt/2) / dt)
	return min(max(w, vipa.MinWeight), vipa.MaxWeight), true
}

// hysteresis publishes a measured weight only when it moved by step or
// more from the last one published.
type hysteresis struct {
	published int // 0 before the first
	step      int
}

// update takes a measure and reports whether the published weight changed.
func (h *hysteresis) update(w int) bool {
	if h.published != 0 && w-h.published < h.step && h.published-w < h.step {
		return false
	}
	changed := w != h.published
	h.published = w
	return changed
}

// weightSampler measures the host for weight auto and calls publish with
// each new published weight, on its own goroutine.
type weightSampler struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// readCPU reads the host's CPU times.
func readCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseProcStat(b)
}

// startWeightSampler publishes a first weight at once, from the CPU times
// since boot, then one per window when it moved materially.
func startWeightSampler(log *zap.Logger, publish func(int)) *weightSampler {
	h := hysteresis{step: weightStep}
	prev, err := readCPU()
	if err != nil {
		log.Warn("weight auto: cannot read the host's CPU times; reporting a fixed weight",
			zap.Int("weight", weightUnmeasured), zap.Error(err))
		publish(weightUnmeasured)
		return nil
	}
	if w, ok := weightOf(cpuTimes{}, prev); ok && h.update(w) {
		publish(w)
	} else {
		h.update(weightUnmeasured)
		publish(weightUnmeasured)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &weightSampler{cancel: cancel}
	s.wg.Go(func() {
		tick := time.NewTicker(weightWindow)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cur, err := readCPU()
			if err != nil {
				continue
			}
			w, ok := weightOf(prev, cur)
			prev = cur
			if ok && h.update(w) {
				log.Info("weight auto: reported weight changed", zap.Int("weight", w))
				publish(w)
			}
		}
	})
	return s
}

// stop ends the sampler and waits for it; nil is a no-op.
func (s *weightSampler) stop() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
}

// withWeight sets the weight of the lines of the VIPAs in targetweight;
// other lines say nothing, so their reports keep an older wire version.
func withWeight(lines []vipa.Listener, w int, targetweight map[netip.Addr]bool) {
	for i := range lines {
		lines[i].Weight = 0
		if targetweight[lines[i].VIPA] {
			lines[i].Weight = w
		}
	}
}

// targetweightVIPAs are the owned definitions distributed by targetweight.
func targetweightVIPAs(known []serfsync.KnownDefinition) map[netip.Addr]bool {
	var out map[netip.Addr]bool
	for _, k := range known {
		if k.Owner && k.Distmethod == vipa.TargetWeight {
			if out == nil {
				out = make(map[netip.Addr]bool)
			}
			out[k.VIPA] = true
		}
	}
	return out
}

// configureWeight follows a config's weight: fixed (> 0) stops a sampler,
// auto (0) starts one unless it runs. The sampler, like the upkeep, runs
// only with an agent to report to.
func (f *Fleet) configureWeight(fixed int) {
	f.mu.Lock()
	if fixed > 0 {
		s := f.sampler
		f.sampler, f.autoWeight = nil, false
		f.mu.Unlock()
		s.stop() // before the fixed weight, which a last measure must not follow
		f.setWeight(fixed)
		return
	}
	if f.autoWeight || f.agent == nil {
		f.mu.Unlock()
		return
	}
	f.autoWeight = true
	log := f.logger
	f.mu.Unlock()
	s := startWeightSampler(log, f.setWeight)
	f.mu.Lock()
	if f.autoWeight && f.sampler == nil {
		f.sampler, s = s, nil
	}
	f.mu.Unlock()
	s.stop() // a config fixing the weight came meanwhile
}

// setWeight publishes this node's weight when it changed.
func (f *Fleet) setWeight(w int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.weight != w {
		f.weight = w
		f.publishLocked()
	}
}

// SelfWeight is the weight this node reports for itself (0 before one).
func (f *Fleet) SelfWeight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.weight
}
