package fleet

import (
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/vipadyn"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// watchTiming is how a backup watches the owners of the VIPAs it backs
// up: a direct ping every every, a suspect after window without an answer.
// SWIM's suspicion takes seconds (and, with no other member to confirm it,
// six times longer); this takes the window and one confirmation.
type watchTiming struct {
	every, window time.Duration
}

// ownerWatchTiming is the profile's; zero (no watch: serf decides alone)
// for wan, whose links are too slow for a window of a second.
func ownerWatchTiming(profile string) watchTiming {
	switch profile {
	case vipa.ProfileFast:
		return watchTiming{every: 100 * time.Millisecond, window: 400 * time.Millisecond}
	case vipa.ProfileWAN:
		return watchTiming{}
	}
	return watchTiming{every: 250 * time.Millisecond, window: time.Second}
}

// watchLogEvery spaces the log lines of confirmations that took no one
// down.
const watchLogEvery = 10 * time.Second

// maxPingsInFlight bounds the direct pings of one node waiting for their
// answers (each waits at most the profile's probe timeout).
const maxPingsInFlight = 3

// ownerWatch runs package vipadyn's Watch over the owners of the VIPAs
// this node backs up: it pings them, confirms a silent one through the
// fleet (other members ping it; a TCP connection to its gossip port) and
// takes it as down (dyn.markDown) only when no path hears it; an answer
// from a node taken as down brings it back (dyn.clearDown).
type ownerWatch struct {
	d      *dyn
	agent  *serfsync.Agent
	timing watchTiming

	mu       sync.Mutex
	w        *vipadyn.Watch
	inflight map[string]int // direct pings waiting, per node
	rotate   int            // where the next confirmation starts in the fleet
	outcomes [3]uint64      // confirmations so far, by vipadyn.Outcome
	logged   time.Time      // the last refuted or inconclusive one logged

	stop chan struct{}
	wg   sync.WaitGroup
}

func startOwnerWatch(d *dyn, agent *serfsync.Agent, t watchTiming) *ownerWatch {
	o := &ownerWatch{d: d, agent: agent, timing: t, w: vipadyn.NewWatch(t.window),
		inflight: map[string]int{}, stop: make(chan struct{})}
	o.wg.Go(o.run)
	return o
}

// end stops the watch and waits for its pings and confirmations (each
// bounded by the probe and dial timeouts).
func (o *ownerWatch) end() {
	if o == nil {
		return
	}
	close(o.stop)
	o.wg.Wait()
}

func (o *ownerWatch) run() {
	tick := time.NewTicker(o.timing.every)
	defer tick.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-tick.C:
		}
		o.round(time.Now())
	}
}

// round pings every watched node and starts the confirmation of new
// suspects.
func (o *ownerWatch) round(now time.Time) {
	watched := o.d.watched()
	o.mu.Lock()
	o.w.Track(watched, now)
	var ping []string
	for _, name := range watched {
		if o.inflight[name] < maxPingsInFlight {
			o.inflight[name]++
			ping = append(ping, name)
		}
	}
	suspects := o.w.Suspects(now)
	o.mu.Unlock()
	for _, name := range ping {
		o.wg.Go(func() { o.ping(name) })
	}
	for _, name := range suspects {
		o.wg.Go(func() { o.confirm(name) })
	}
}

func (o *ownerWatch) ping(name string) {
	ok := o.agent.Ping(name)
	o.mu.Lock()
	o.inflight[name]--
	if o.inflight[name] <= 0 {
		delete(o.inflight, name)
	}
	back := ok && o.w.Heard(name, time.Now())
	o.mu.Unlock()
	if back {
		// It may be a new process, killed and restarted before serf saw
		// it fail: the claims held of it may be the old one's. They count
		// again once it has answered a sync (Recheck), so a backup routing
		// its VIPA neither yields to them nor hands the VIPA back early.
		o.d.f.logger.Warn("VIPA owner answers again: no longer taken as down; its definitions are fetched again", zap.String("node", name))
		o.agent.Recheck(name)
		o.d.clearDown(name)
		o.d.wake()
	}
}

// confirm asks other members to ping the suspect and tries its gossip
// port, all at once, and records what that decides.
func (o *ownerWatch) confirm(name string) {
	var live []string
	for _, m := range o.agent.Members() {
		if m.Status == "alive" {
			live = append(live, m.Name)
		}
	}
	o.mu.Lock()
	start := o.rotate
	o.rotate += vipadyn.MaxConfirmers
	o.mu.Unlock()
	vias := vipadyn.Confirmers(live, o.d.f.nodeName(), name, o.d.downSet(), start)

	// A port that does not answer says little on a slow link; with no one
	// else to ask, give it the time of a lost SYN's retransmission.
	bound := o.agent.ProbeTimeout()
	if len(vias) == 0 {
		bound = max(3*bound, 1200*time.Millisecond)
	}
	answers := make([]vipadyn.Answer, len(vias))
	var reachable bool
	var wg sync.WaitGroup
	for i, via := range vias {
		wg.Go(func() {
			c, err := o.agent.Confirm(via, name)
			switch {
			case errors.Is(err, serfsync.ErrGone):
				answers[i] = vipadyn.Gone
			case err != nil:
				answers[i] = vipadyn.NoWord
			case c.Alive:
				answers[i] = vipadyn.Alive
			case c.Reached:
				answers[i] = vipadyn.Reached
			default:
				answers[i] = vipadyn.Silent
			}
		})
	}
	wg.Go(func() { reachable, _ = o.agent.Reachable(name, bound) })
	wg.Wait()

	outcome := vipadyn.Decide(answers, reachable)
	now := time.Now()
	o.d.confirm[outcome].Add(1)
	o.mu.Lock()
	o.outcomes[outcome]++
	totals := o.outcomes
	// A lossy link to the owner is refuted every window: log that at
	// most every watchLogEvery, with the totals so far.
	quiet := outcome != vipadyn.Down && now.Sub(o.logged) < watchLogEvery
	if !quiet {
		o.logged = now
	}
	down := false
	switch outcome {
	case vipadyn.Refuted:
		o.w.Confirmed(name, true, now)
	case vipadyn.Inconclusive:
		o.w.Retry(name, now)
	case vipadyn.Down:
		down = o.w.Confirmed(name, false, now)
	}
	o.mu.Unlock()
	log := o.d.f.logger.Info
	if down {
		log = o.d.f.logger.Warn
	}
	if !quiet {
		log("VIPA owner silent to direct pings: confirmed through the fleet",
			zap.String("node", name), zap.Stringer("outcome", outcome), zap.Bool("taken_as_down", down),
			zap.Strings("asked", vias), zap.Any("answers", answerNames(answers)), zap.Bool("port_accepts", reachable),
			zap.Uint64("refuted_total", totals[vipadyn.Refuted]), zap.Uint64("inconclusive_total", totals[vipadyn.Inconclusive]),
			zap.Uint64("down_total", totals[vipadyn.Down]))
	}
	if down {
		o.d.markDown(name)
	}
}

func answerNames(as []vipadyn.Answer) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = [...]string{"no_word", "alive", "silent", "gone", "reached"}[a]
	}
	return out
}
