package vipadyn

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestWatchMissedBeatsConfirmed(t *testing.T) {
	w := NewWatch(300 * time.Millisecond)
	w.Track([]string{"a"}, at(0))
	w.Heard("a", at(100))
	if s := w.Suspects(at(350)); len(s) != 0 {
		t.Fatalf("suspects after 250 ms of silence: %v", s)
	}
	if s := w.Suspects(at(400)); !slices.Equal(s, []string{"a"}) {
		t.Fatalf("suspects after 300 ms of silence: %v, want [a]", s)
	}
	if s := w.Suspects(at(500)); len(s) != 0 {
		t.Fatalf("a suspect being confirmed is asked again: %v", s)
	}
	if !w.Confirmed("a", false, at(650)) || !w.Down("a") {
		t.Fatal("an unanswered confirmation does not take the owner down")
	}
	if s := w.Suspects(at(900)); len(s) != 0 {
		t.Fatalf("a down owner is suspected again: %v", s)
	}
}

func TestWatchRefuted(t *testing.T) {
	w := NewWatch(300 * time.Millisecond)
	w.Track([]string{"a"}, at(0))
	if s := w.Suspects(at(300)); len(s) != 1 {
		t.Fatalf("suspects: %v", s)
	}
	if w.Confirmed("a", true, at(500)) || w.Down("a") {
		t.Fatal("an answered confirmation took the owner down")
	}
	// The answer counts as heard: a new suspicion needs a new window.
	if s := w.Suspects(at(700)); len(s) != 0 {
		t.Fatalf("suspected again within the window after a refutation: %v", s)
	}
	if s := w.Suspects(at(800)); len(s) != 1 {
		t.Fatalf("still silent after a refutation and a window: %v", s)
	}
}

// A slow link: direct answers arrive late but arrive; each one that comes
// while a confirmation is out ends the suspicion, whatever the
// confirmation then says.
func TestWatchSlowLink(t *testing.T) {
	w := NewWatch(300 * time.Millisecond)
	w.Track([]string{"a"}, at(0))
	for ms := 0; ms < 10000; ms += 100 {
		if ms%200 == 0 {
			w.Heard("a", at(ms-100)) // answers 100 ms late, every other probe lost
		}
		for _, s := range w.Suspects(at(ms)) {
			t.Fatalf("suspected %s at %d ms on a slow but answering link", s, ms)
		}
	}
	// Silent long enough to suspect, then a late direct answer lands before
	// the confirmation times out.
	w.Suspects(at(10400))
	w.Heard("a", at(10450))
	if w.Confirmed("a", false, at(10650)) || w.Down("a") {
		t.Fatal("an owner heard during its confirmation was taken down")
	}
}

func TestWatchFlapping(t *testing.T) {
	w := NewWatch(300 * time.Millisecond)
	w.Track([]string{"a"}, at(0))
	downs, backs := 0, 0
	now := 0
	for range 5 {
		now += 400
		for range w.Suspects(at(now)) {
			if w.Confirmed("a", false, at(now+250)) {
				downs++
			}
		}
		now += 300
		if w.Heard("a", at(now)) {
			backs++
		}
	}
	if downs != 5 || backs != 5 {
		t.Fatalf("flapping owner: %d downs, %d backs, want 5 and 5", downs, backs)
	}
	if w.Down("a") {
		t.Fatal("an owner heard last is down")
	}
	if w.Heard("a", at(now+100)) {
		t.Fatal("an answer from an owner not down reports it back")
	}
}

func TestWatchOwnerRestart(t *testing.T) {
	w := NewWatch(300 * time.Millisecond)
	w.Track([]string{"a"}, at(0))
	w.Suspects(at(300))
	w.Confirmed("a", false, at(550))
	// Serf declares it failed; another node owns the VIPA: a is no longer
	// watched, then comes back as owner.
	w.Track(nil, at(2000))
	w.Track([]string{"a"}, at(5000))
	if w.Down("a") {
		t.Fatal("a restarted owner is down from its previous life")
	}
	if s := w.Suspects(at(5200)); len(s) != 0 {
		t.Fatalf("a restarted owner is suspected before a window: %v", s)
	}
	// Down and still watched: its answer brings it back.
	w.Suspects(at(5300))
	w.Confirmed("a", false, at(5550))
	if !w.Heard("a", at(5600)) || w.Down("a") {
		t.Fatal("an answer from a down owner does not bring it back")
	}
}

func TestWatchConfirmationOfForgotten(t *testing.T) {
	w := NewWatch(300 * time.Millisecond)
	w.Track([]string{"a"}, at(0))
	w.Suspects(at(300))
	w.Track(nil, at(400))
	if w.Confirmed("a", false, at(550)) {
		t.Fatal("a node no longer watched was taken down")
	}
}
