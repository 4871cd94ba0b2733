package serfsync

import (
	"maps"
	"sync"
)

// stats are the agent's counters.
type stats struct {
	mu   sync.Mutex
	m    map[string]uint64
	logs logSampler // peer errors logged per kind and interval
	keys keyQueries // key-management queries, for the keyring guard
}

func (s *stats) inc(name string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]uint64{}
	}
	s.m[name]++
	s.mu.Unlock()
}

// snapshot copies the counters.
func (s *stats) snapshot() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := maps.Clone(s.m)
	if out == nil {
		out = map[string]uint64{}
	}
	return out
}

// Stats returns a copy of the agent's counters:
//
//	drop_<reason>  report or definition data dropped on receipt; reasons:
//	               unknown_vipa, port, not_candidate, address,
//	               address_conflict, ready (report lines), seq, hash,
//	               size, decode, identity (versions)
//	auth_fail      state channel streams refused or failing authentication
//	stream_shed    unproven streams on the gossip port closed to stay
//	               within maxPending (a flood of stalled streams)
//	gossip_error   serf and memberlist warnings and errors, mostly about
//	               what peers sent (junk packets and streams among them)
//	log_suppressed peer errors not logged: one line per kind and
//	               logInterval is, saying how many were not
//	key_query      serf key-management queries received (install, use,
//	               remove, list a key)
//	keyring_restored  keyring changes by such queries undone (remote key
//	               management off)
//	sync_out       syncs sent; sync_in: syncs answered
//	probe_out      confirmations asked of a member (a silent owner);
//	               probe_in: such requests answered
//	carry_out      carried state asked of a routing node (a standby);
//	               carry_in: such requests answered; carry_fail: asks
//	               that failed (the node down, or predating them);
//	               carry_stream: streams a standby opened for its asks
//	fetch_retry    syncs that failed and were retried
//	report_applied, defs_applied  new versions accepted
//	tag_set        serf tag updates; tag_retry: SetTags failures retried
func (a *Agent) Stats() map[string]uint64 {
	a.mu.Lock()
	mux := a.mux
	a.mu.Unlock()
	out := a.stats.snapshot()
	if mux != nil {
		if n := mux.pending.shed.Load(); n > 0 {
			out["stream_shed"] = n
		}
	}
	return out
}
