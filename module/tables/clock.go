package tables

import (
	"sync/atomic"
	"time"
)

// epoch anchors mono, a monotonic clock read once per call (time.Now reads
// two clocks): affinity expiries need no wall time until they are listed.
var epoch = time.Now()

func mono(t time.Time) int64 { return int64(t.Sub(epoch)) }

func monoNow() int64 { return int64(time.Since(epoch)) }

// wallAnchor is a time.Now reading that Now extends by the monotonic clock.
var wallAnchor atomic.Pointer[time.Time]

// reanchor bounds how far Now's wall clock follows the monotonic one: a
// step of the system clock shows in Now within this long.
const reanchor = time.Second

func init() { wallAnchor.Store(&epoch) }

// Now is time.Now for the connection path, at the cost of one clock
// reading instead of two: the monotonic clock, with the wall clock derived
// from a time.Now reading at most a second old (slewing the clock moves
// that by well under a millisecond). Its monotonic reading is exact, so
// durations and Pick's affinity expiries are as with time.Now.
func Now() time.Time {
	a := wallAnchor.Load()
	d := time.Since(*a)
	if d < reanchor {
		return a.Add(d)
	}
	t := time.Now()
	wallAnchor.Store(&t)
	return t
}
