package tables

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Health of a DPT row, from the outcomes of the routing node's dials.
type Health uint8

const (
	// Healthy rows take new connections.
	Healthy Health = iota
	// Unhealthy rows failed their last dials; they get new connections only
	// when no healthy row with room exists, until a probe finds them back.
	Unhealthy
)

// String returns the name used by the admin API.
func (h Health) String() string {
	switch h {
	case Healthy:
		return string(vipa.Healthy)
	case Unhealthy:
		return string(vipa.Unhealthy)
	}
	return fmt.Sprintf("Health(%d)", uint8(h))
}

// MarshalText implements encoding.TextMarshaler.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

const (
	// tsrMax is a TSR of 100 in the score's fixed point (hundredths).
	tsrMax = 10000
	// failThreshold consecutive failed dials make a row unhealthy; a
	// timed-out dial does at once, since every later client would pay one.
	failThreshold = 2
	// ProbeBackoff is how long an unhealthy row waits for its first probe;
	// each failed probe doubles it, up to MaxProbeBackoff.
	ProbeBackoff    = time.Second
	MaxProbeBackoff = 30 * time.Second
)

// health is a row's responsiveness. The TSR is a decayed average of dial
// outcomes: a success closes 1/16 of the gap to 100, and the k-th failure
// in a row takes k/16 (at most half) of what is left, so one refusal among
// thousands costs a few points while a dead row is near 20 after six
// attempts. A healthy row whose dials succeed writes nothing, so the
// connection path does not bounce its cache line between cores.
type health struct {
	tsr      atomic.Int32 // 0..tsrMax
	fails    atomic.Int32 // consecutive failed dials and probes
	down     atomic.Bool
	probing  atomic.Bool  // handed to the prober by Due, outcome pending
	backoff  atomic.Int64 // nanoseconds until the next probe
	due      atomic.Int64 // unix nanoseconds: the next probe is due
	rampFrom atomic.Int64 // unix nanoseconds: the row appeared or recovered
	_        [24]byte     // 64 bytes: read on every connection, kept off others' cache lines
}

func newHealth(now int64) *health {
	h := new(health)
	h.tsr.Store(tsrMax)
	h.rampFrom.Store(now)
	return h
}

func (h *health) succeeded() {
	if h.fails.Load() != 0 {
		h.fails.Store(0)
	}
	for {
		old := h.tsr.Load()
		if old == tsrMax {
			return
		}
		if h.tsr.CompareAndSwap(old, old+max((tsrMax-old)/16, 1)) {
			return
		}
	}
}

// failed records a failed dial and returns the consecutive failures.
func (h *health) failed() int32 {
	k := h.fails.Add(1)
	for {
		old := h.tsr.Load()
		if h.tsr.CompareAndSwap(old, old-old*min(k, 8)/16) {
			return k
		}
	}
}

// DialSucceeded feeds a dial that connected. It reports whether the row
// turned healthy again (a connection that fell back to it got through).
func (t *Target) DialSucceeded(now time.Time) bool {
	if !t.answered() {
		return false
	}
	t.health.rampFrom.Store(now.UnixNano())
	return true
}

// Answered is DialSucceeded now, reading the clock only when the row turns
// healthy again: the connection path's call.
func (t *Target) Answered() bool {
	if !t.answered() {
		return false
	}
	t.health.rampFrom.Store(time.Now().UnixNano())
	return true
}

// answered feeds a dial that connected and reports whether the row turned
// healthy; the caller then starts its slow start.
func (t *Target) answered() bool {
	h := t.health
	h.succeeded()
	return h.down.Load() && h.down.CompareAndSwap(true, false)
}

// DialFailed feeds a dial that did not connect; timedOut says it hit the
// dial timeout rather than being refused. It reports whether the row just
// turned unhealthy, so the caller logs each transition once.
func (t *Target) DialFailed(now time.Time, timedOut bool) bool {
	h := t.health
	k := h.failed()
	if h.down.Load() || (k < failThreshold && !timedOut) {
		return false
	}
	if !h.down.CompareAndSwap(false, true) {
		return false
	}
	h.backoff.Store(int64(ProbeBackoff))
	h.due.Store(now.UnixNano() + int64(ProbeBackoff))
	return true
}

// ProbeDone takes the outcome of a probe of a row Due returned, and
// reports whether the row turned healthy.
func (t *Target) ProbeDone(now time.Time, ok bool) bool {
	h := t.health
	defer h.probing.Store(false)
	if !ok {
		h.failed()
		b := min(2*h.backoff.Load(), int64(MaxProbeBackoff))
		h.backoff.Store(b)
		h.due.Store(now.UnixNano() + b)
		return false
	}
	// A probe stands for many clients: it closes half the gap at once, so
	// the row does not crawl back from a TSR near zero.
	h.fails.Store(0)
	for {
		old := h.tsr.Load()
		if h.tsr.CompareAndSwap(old, old+(tsrMax-old)/2) {
			break
		}
	}
	if !h.down.CompareAndSwap(true, false) {
		return false
	}
	h.rampFrom.Store(now.UnixNano())
	return true
}

// Health is the row's current health.
func (t *Target) Health() Health {
	if t.health.down.Load() {
		return Unhealthy
	}
	return Healthy
}

// TSR is the row's responsiveness score, 0-100.
func (t *Target) TSR() int { return int(t.health.tsr.Load()) / (tsrMax / 100) }

// healthy is the connection path's check.
func (t *Target) healthy() bool { return !t.health.down.Load() }

// takeDue claims the row for a probe when it is unhealthy and its backoff
// has passed.
func (t *Target) takeDue(now int64) bool {
	h := t.health
	return h.down.Load() && h.due.Load() <= now && h.probing.CompareAndSwap(false, true)
}

// ramp is the slow-start factor in thousandths: 100 (10%) when the row
// appeared or recovered, growing linearly to 1000 over d.
func (t *Target) ramp(now, d int64) int64 {
	if d <= 0 {
		return 1000
	}
	el := now - t.health.rampFrom.Load()
	if el >= d {
		return 1000
	}
	return 100 + 900*max(el, 0)/d
}

// Carry takes the health the routing node of the row's VIPA found for it,
// on a standby that does not route the VIPA itself: tsr (0-100) and
// whether the row is unhealthy. An unhealthy row's first probe is due
// ProbeBackoff from now (a standby postpones its probes until it routes
// the VIPA); a row that turns healthy starts its slow start. It reports
// whether the health changed.
func (t *Target) Carry(now time.Time, tsr int, unhealthy bool) bool {
	h := t.health
	if tsr = min(max(tsr, 0), 100); t.TSR() != tsr {
		h.tsr.Store(int32(tsr * (tsrMax / 100)))
	}
	if unhealthy {
		if h.down.Load() {
			return false
		}
		h.fails.Store(failThreshold)
		h.backoff.Store(int64(ProbeBackoff))
		h.due.Store(now.UnixNano() + int64(ProbeBackoff))
		return h.down.CompareAndSwap(false, true)
	}
	h.fails.Store(0)
	if !h.down.CompareAndSwap(true, false) {
		return false
	}
	h.rampFrom.Store(now.UnixNano())
	return true
}

// Postpone gives back a row Due handed out without probing it: its probe
// is due again after its current backoff.
func (t *Target) Postpone(now time.Time) {
	h := t.health
	h.due.Store(now.UnixNano() + h.backoff.Load())
	h.probing.Store(false)
}
