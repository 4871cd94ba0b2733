package vipadyn

import (
	"slices"
	"time"
)

// Watch decides, from direct probes of the nodes that own the VIPAs this
// node backs up, when one is gone before serf says so. A node not heard
// for Window is a suspect; a suspect is down only once a confirmation
// through the fleet (other paths than the direct link) goes unanswered, so
// one slow link refutes itself instead of causing a takeover. Watch holds
// no clock: every call is given the time.
type Watch struct {
	Window time.Duration
	peers  map[string]*watched
}

type watched struct {
	heard time.Time // the last answer, or when the watch began
	hold  time.Time // no new suspicion before: an inconclusive confirmation
	state watchState
}

type watchState int

const (
	watchOK         watchState = iota
	watchConfirming            // a suspect: confirmation asked
	watchDown                  // confirmed gone
)

// NewWatch returns a watch that suspects a node silent for window.
func NewWatch(window time.Duration) *Watch {
	return &Watch{Window: window, peers: map[string]*watched{}}
}

// Track sets the nodes to watch: new ones count as heard now, the others
// are forgotten.
func (w *Watch) Track(names []string, now time.Time) {
	for name := range w.peers {
		if !slices.Contains(names, name) {
			delete(w.peers, name)
		}
	}
	for _, name := range names {
		if _, ok := w.peers[name]; !ok {
			w.peers[name] = &watched{heard: now}
		}
	}
}

// Heard records an answer from name. It reports true when name was down:
// it is back, and its downness must be cleared.
func (w *Watch) Heard(name string, now time.Time) (back bool) {
	p := w.peers[name]
	if p == nil {
		return false
	}
	back = p.state == watchDown
	if now.After(p.heard) {
		p.heard = now
	}
	p.state = watchOK
	return back
}

// Suspects returns the nodes silent for Window that are not being
// confirmed yet; they are being confirmed from now on.
func (w *Watch) Suspects(now time.Time) []string {
	var out []string
	for name, p := range w.peers {
		if p.state == watchOK && now.Sub(p.heard) >= w.Window && !now.Before(p.hold) {
			p.state = watchConfirming
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Confirmed records the outcome of a suspect's confirmation. It reports
// true when name is now down (no answer by any path, and none directly in
// the meantime); an answer refutes the suspicion and counts as heard.
func (w *Watch) Confirmed(name string, answered bool, now time.Time) (down bool) {
	p := w.peers[name]
	if p == nil || p.state != watchConfirming {
		return false // heard meanwhile, or no longer watched
	}
	if answered {
		p.state = watchOK
		p.heard = now
		return false
	}
	p.state = watchDown
	return true
}

// Retry records a confirmation that settled nothing (no path answered
// either way): name stays a suspect, confirmed again once a window has
// passed, and is not counted as heard.
func (w *Watch) Retry(name string, now time.Time) {
	p := w.peers[name]
	if p == nil || p.state != watchConfirming {
		return
	}
	p.state = watchOK
	p.hold = now.Add(w.Window)
}

// Down reports whether name is confirmed gone.
func (w *Watch) Down(name string) bool {
	p := w.peers[name]
	return p != nil && p.state == watchDown
}
