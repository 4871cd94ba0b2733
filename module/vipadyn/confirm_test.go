package vipadyn

import (
	"slices"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name      string
		answers   []Answer
		reachable bool
		want      Outcome
	}{
		{"killed owner: the fleet finds it silent, its port refuses", []Answer{Silent, Silent}, false, Down},
		{"slow link: another member hears it", []Answer{Silent, Alive}, false, Refuted},
		{"slow link, port unreachable from here too", []Answer{Alive}, false, Refuted},
		{"alive elsewhere beats a reachable port", []Answer{Alive, NoWord}, true, Refuted},
		{"starved owner: silent everywhere, its kernel accepts", []Answer{Silent, Silent}, true, Inconclusive},
		{"no member answered", []Answer{NoWord, NoWord}, false, Inconclusive},
		{"one silent, one without a word", []Answer{NoWord, Silent}, false, Down},
		{"no one else to ask: the port decides", nil, false, Down},
		{"no one else to ask, the port accepts", nil, true, Inconclusive},
		{"the other members are gone too", []Answer{Gone, Gone}, false, Down},
		{"gone and no word", []Answer{Gone, NoWord}, false, Inconclusive},
		{"lossy link, loaded confirmer: its ping timed out but the port accepted it", []Answer{Reached}, false, Inconclusive},
		{"one reached it, one found it silent", []Answer{Silent, Reached}, false, Inconclusive},
		{"reached by one, heard by another", []Answer{Reached, Alive}, false, Refuted},
	} {
		if got := Decide(c.answers, c.reachable); got != c.want {
			t.Errorf("%s: %v reachable=%v → %v, want %v", c.name, c.answers, c.reachable, got, c.want)
		}
	}
}

func TestConfirmers(t *testing.T) {
	live := []string{"e", "a", "b", "c", "d", "b"}
	got := Confirmers(live, "b", "a", map[string]bool{"d": true}, 0)
	if !slices.Equal(got, []string{"c", "e"}) {
		t.Fatalf("confirmers: %v, want [c e] (not self, the suspect, a down member, nor twice)", got)
	}
	if got := Confirmers([]string{"a", "b"}, "b", "a", nil, 0); len(got) != 0 {
		t.Fatalf("a fleet of the owner and this node: %v, want none", got)
	}
	many := []string{"a", "b", "c", "d", "e", "f", "g"}
	seen := map[string]bool{}
	for start := range 4 {
		got := Confirmers(many, "b", "a", nil, start*MaxConfirmers)
		if len(got) != MaxConfirmers {
			t.Fatalf("start %d: %v, want %d members", start, got, MaxConfirmers)
		}
		for _, n := range got {
			seen[n] = true
		}
	}
	if len(seen) != 5 {
		t.Fatalf("successive confirmations asked %v, want every one of the 5 others", seen)
	}
}

// An inconclusive confirmation keeps the suspect without counting as
// heard, and asks again only after a window.
func TestWatchRetry(t *testing.T) {
	w := NewWatch(300 * time.Millisecond)
	w.Track([]string{"a"}, at(0))
	if s := w.Suspects(at(300)); len(s) != 1 {
		t.Fatalf("suspects: %v", s)
	}
	w.Retry("a", at(500))
	if w.Down("a") {
		t.Fatal("an inconclusive confirmation took the owner down")
	}
	if s := w.Suspects(at(700)); len(s) != 0 {
		t.Fatalf("confirmed again within a window of an inconclusive one: %v", s)
	}
	if s := w.Suspects(at(800)); !slices.Equal(s, []string{"a"}) {
		t.Fatalf("still silent a window after an inconclusive confirmation: %v, want [a]", s)
	}
	if !w.Confirmed("a", false, at(1000)) {
		t.Fatal("the next confirmation, unanswered, does not take it down")
	}
	// A retry of a node not being confirmed changes nothing.
	w.Retry("a", at(1100))
	if !w.Down("a") {
		t.Fatal("a stray retry brought a down owner back")
	}
}
