package vipadyn

import (
	"slices"
)

// Answer is one member's word when asked to confirm that a suspect is
// gone: it pinged the suspect itself, over its own link.
type Answer int

const (
	NoWord  Answer = iota // no answer in time, or a malformed one: a path unknown
	Alive                 // the suspect answered it
	Silent                // the suspect did not answer it
	Gone                  // the member's own gossip port refused: no process, no path
	Reached               // the suspect did not answer it, but its gossip port accepted its connection
)

// Outcome is what a confirmation decides.
type Outcome int

const (
	Refuted      Outcome = iota // the suspect answered on another path: not down
	Inconclusive                // no path answered either way: ask again later
	Down                        // gone: silent directly, through the fleet and to TCP
)

func (o Outcome) String() string {
	return [...]string{"refuted", "inconclusive", "down"}[o]
}

// Decide judges a suspect from the members asked to ping it and a TCP
// connection to its gossip port (reachable: the suspect's kernel accepted
// it; a killed process refuses, a host gone does not answer).
//
//   - Any member it answered refutes the suspicion: the direct link is
//     slow or lossy, the owner is alive.
//   - A port that accepts a connection, this node's or on a member's path,
//     keeps the suspect: its process may be starved or stopped (or the
//     member that pinged it too loaded to read the answer in time), but the
//     host and the socket live; serf's own failure detection decides then.
//   - Otherwise it is down once a member found it silent too, or when no
//     member could be asked (none other is live, or all refused: their
//     processes are gone). A member that did not answer at all makes the
//     confirmation inconclusive, unless another found the suspect silent.
func Decide(answers []Answer, reachable bool) Outcome {
	if slices.Contains(answers, Alive) {
		return Refuted
	}
	if reachable || slices.Contains(answers, Reached) {
		return Inconclusive
	}
	if slices.Contains(answers, Silent) {
		return Down
	}
	if slices.Contains(answers, NoWord) {
		return Inconclusive
	}
	return Down
}

// MaxConfirmers is how many members one confirmation asks, as
// memberlist's indirect probes ask three.
const MaxConfirmers = 3

// Confirmers picks the members to ask about suspect: live members other
// than this node (self), the suspect and those known down, at most
// MaxConfirmers, starting at offset start in name order so that
// successive confirmations spread over the fleet.
func Confirmers(live []string, self, suspect string, down map[string]bool, start int) []string {
	var cands []string
	for _, name := range live {
		if name != self && name != suspect && !down[name] {
			cands = append(cands, name)
		}
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	if len(cands) <= MaxConfirmers {
		return cands
	}
	out := make([]string, 0, MaxConfirmers)
	for i := range MaxConfirmers {
		out = append(out, cands[(start+i)%len(cands)])
	}
	return out
}
