package serfsync

import (
	"errors"
	"maps"
	"time"

	"go.uber.org/zap"
)

// tagDebounce gathers bursts of local changes into one SetTags. Tags are
// the slow path (peers learn news over the state channel first), so a
// little delay costs nothing.
const tagDebounce = 25 * time.Millisecond

var errTagTimeout = errors.New("timeout waiting for update broadcast")

// tags are this node's serf tags: its advertise address and the digests
// of its report and definitions, about 100 bytes of serf's 512, its
// vipadyn tag, and once Configured, tagConfigured.
func (a *Agent) tags() map[string]string {
	configured := closed(a.configured) // before the state: Configured follows the config
	a.mu.Lock()
	own, vd := a.core.own, a.core.vipadynTag
	a.mu.Unlock()
	adv := a.cfg.Advertise.String()
	if a.cfg.hooks != nil && a.cfg.hooks.advTag != "" {
		adv = a.cfg.hooks.advTag
	}
	t := map[string]string{
		tagAdvertise: adv,
		tagReport:    own.report.digest.String(),
		tagDefs:      own.defs.digest.String(),
	}
	if vd != "" {
		t[tagVIPADyn] = vd
	}
	if configured {
		t[tagConfigured] = "1"
	}
	return t
}

// kickTags asks the tagger to publish the current digests.
func (a *Agent) kickTags() {
	select {
	case a.tagCh <- struct{}{}:
	default:
	}
}

// tagger is the one goroutine that calls SetTags, from last, the tags
// given to serf.Create: not the tags when it begins to run, which may
// hold a change made since (a config installed right after Start) that
// serf would then never publish. memberlist can drop a broadcast from its
// queue (it then reports a timeout), so a failed SetTags is retried with
// the latest tags until one succeeds.
func (a *Agent) tagger(last map[string]string) {
	defer a.wg.Done()
	if h := a.cfg.hooks; h != nil && h.taggerStart != nil {
		h.taggerStart()
	}
	for {
		select {
		case <-a.stop:
			return
		case <-a.tagCh:
		}
		if !a.sleep(tagDebounce) {
			return
		}
		// Read before the tags: configured, they hold the config.
		configured := closed(a.configured)
		backoff := 100 * time.Millisecond
		for {
			tags := a.tags()
			if maps.Equal(tags, last) {
				break
			}
			err := a.setTags(tags)
			if err == nil {
				last = tags
				a.stats.inc("tag_set")
				break
			}
			a.stats.inc("tag_retry")
			a.logger.Debug("setting serf tags; retrying", zap.Error(err))
			if !a.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		if configured {
			a.joinReadyOnce.Do(func() { close(a.joinReady) })
		}
	}
}

// closed says whether ch is closed.
func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (a *Agent) setTags(tags map[string]string) error {
	if h := a.cfg.hooks; h != nil {
		if h.dropTag != nil && h.dropTag() {
			return nil
		}
		if h.failTag != nil && h.failTag() {
			return errTagTimeout
		}
	}
	return a.serf.SetTags(tags)
}

// sleep waits d unless the agent stops first.
func (a *Agent) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.stop:
		return false
	case <-t.C:
		return true
	}
}
