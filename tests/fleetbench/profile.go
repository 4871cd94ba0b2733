//go:build linux

package main

import (
	"fmt"
	"math"
	"time"
)

// timing is the part of a gossip profile that decides crash detection; the
// figures mirror serfsync's memberlist settings (memberlist's LAN defaults,
// and "fast" as serfsync tunes it).
type timing struct {
	probe, probeTimeout time.Duration
	suspicionMult       int
	suspicionMaxMult    int
}

var profiles = map[string]timing{
	"lan":  {probe: time.Second, probeTimeout: 500 * time.Millisecond, suspicionMult: 4, suspicionMaxMult: 6},
	"fast": {probe: 500 * time.Millisecond, probeTimeout: 200 * time.Millisecond, suspicionMult: 3, suspicionMaxMult: 6},
}

// suspicion is how long memberlist keeps a member suspect before declaring
// it dead, as memberlist v0.7.0 computes it for n members: the minimum
// timeout, reached at once when the fleet is too small to expect any
// confirmation, else after k independent confirmations (max without them).
func (t timing) suspicion(n int) (d time.Duration, confirmations int, maxD time.Duration) {
	scale := math.Max(1, math.Log10(float64(n)))
	d = time.Duration(float64(t.suspicionMult) * scale * float64(t.probe))
	k := t.suspicionMult - 2
	if n-2 < k {
		k = 0
	}
	return d, k, time.Duration(t.suspicionMaxMult) * d
}

// detection bounds the time from a crash to the verdict: a survivor probes
// the dead member within one to three probe intervals (each prober walks
// its shuffled member list), the failed probe takes one interval, then the
// suspicion timeout runs.
func (t timing) detection(n int) (lo, hi time.Duration) {
	s, _, _ := t.suspicion(n)
	return t.probe + s, 3*t.probe + s
}

// describe is one line for the report.
func (t timing) describe(name string, n int) string {
	s, k, maxS := t.suspicion(n)
	lo, hi := t.detection(n)
	conf := "no confirmation expected"
	if k > 0 {
		conf = fmt.Sprintf("once %d other member confirms (else up to %s)", k, fmtDur(maxS))
	}
	return fmt.Sprintf("%s: probe every %s (timeout %s), suspicion %s for %d members, %s → failure detection %s–%s",
		name, fmtDur(t.probe), fmtDur(t.probeTimeout), fmtDur(s), n, conf, fmtDur(lo), fmtDur(hi))
}
