package tables

import (
	"math/rand/v2"
	"sync"
	"testing"
	"unsafe"
)

// TestStatsStripes: connections counted on any stripe sum exactly;
// approx stays within slack of the active count, and below answers
// exactly for every bound near it, whichever way it is read.
func TestStatsStripes(t *testing.T) {
	for _, n := range []int{1, 2, 16} {
		st := &stats{stripes: make([]stripe, n)}
		rng := rand.New(rand.NewPCG(5, 6))
		var live []uint8 // the processor of each open connection
		var total uint64
		for step := range 20_000 {
			if len(live) > 0 && (len(live) > 300 || rng.IntN(2) == 0) {
				k := rng.IntN(len(live))
				st.ended(live[k], 3, 5)
				live[k] = live[len(live)-1]
				live = live[:len(live)-1]
			} else {
				sh := uint8(rng.IntN(256))
				st.started(sh)
				live = append(live, sh)
				total++
			}
			active := int64(len(live))
			if st.active() != active {
				t.Fatalf("%d stripes, step %d: active %d, want %d", n, step, st.active(), active)
			}
			if d := st.approx.Load() - active; d > st.slack() || -d > st.slack() {
				t.Fatalf("%d stripes, step %d: approx %d, active %d, slack %d", n, step, st.approx.Load(), active, st.slack())
			}
			for b := active - st.slack() - 2; b <= active+st.slack()+2; b++ {
				if st.below(b) != (active < b) {
					t.Fatalf("%d stripes, step %d: below(%d) = %v with %d active", n, step, b, st.below(b), active)
				}
			}
		}
		ended := total - uint64(len(live))
		if tt, tc := st.bytes(); st.total() != total || tt != 3*int64(ended) || tc != 5*int64(ended) {
			t.Errorf("%d stripes: total %d, bytes %d/%d; want %d, %d/%d", n, st.total(), tt, tc, total, 3*ended, 5*ended)
		}
	}
}

// TestStatsConcurrent: goroutines counting on the same and on different
// stripes lose nothing, and approx ends within slack (with more than one
// stripe).
func TestStatsConcurrent(t *testing.T) {
	st := newStats()
	const workers, each = 8, 20_000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				sh := uint8(w*7 + i%3)
				st.started(sh)
				if i%4 != 0 {
					st.ended(sh, 1, 1)
				}
			}
		})
	}
	wg.Wait()
	want := int64(workers * each / 4)
	if st.active() != want || st.total() != workers*each {
		t.Errorf("active %d, total %d; want %d, %d", st.active(), st.total(), want, workers*each)
	}
	if d := st.approx.Load() - want; d > st.slack() || -d > st.slack() {
		t.Errorf("approx %d, active %d, slack %d", st.approx.Load(), want, st.slack())
	}
}

// TestFalseShareLayout: what different cores write on the connection path
// is falseShare bytes apart: each stripe, a row's rough count, the group's
// rotation.
func TestFalseShareLayout(t *testing.T) {
	for name, n := range map[string]uintptr{
		"stripe":     unsafe.Sizeof(stripe{}),
		"stats":      unsafe.Sizeof(stats{}),
		"groupState": unsafe.Sizeof(groupState{}),
	} {
		if n%falseShare != 0 {
			t.Errorf("%s is %d bytes, not a multiple of %d", name, n, falseShare)
		}
	}
	if off := unsafe.Offsetof(stats{}.approx); off != falseShare {
		t.Errorf("stats.approx at %d, want %d", off, falseShare)
	}
	if off := unsafe.Offsetof(groupState{}.inUse); off != falseShare {
		t.Errorf("groupState.inUse at %d, want %d", off, falseShare)
	}
}

// TestStatsPublishStale: a move whose goroutine stalled after counting,
// while other moves took the stripe far from the count it saw and
// published that, publishes the stripe's count as it is now, not the
// stale one.
func TestStatsPublishStale(t *testing.T) {
	st := &stats{stripes: make([]stripe, 2)}
	s := &st.stripes[0]
	st.started(0) // the stalled move counted 1 …
	p := s.published.Load()
	for range 30 { // … then others took the stripe to 31 and published
		st.started(0)
	}
	if s.published.Load() == p {
		t.Fatal("30 moves published nothing")
	}
	st.publish(s, s.published.Load())
	if d := st.approx.Load() - st.active(); d != 0 {
		t.Errorf("approx %d off the count %d after publish", st.approx.Load(), st.active())
	}
	// the stalled move now finds published moved on: nothing to do, and
	// approx stays within slack
	st.publish(s, p)
	if d := st.approx.Load() - st.active(); d > st.slack() || -d > st.slack() {
		t.Errorf("approx %d, active %d, slack %d", st.approx.Load(), st.active(), st.slack())
	}
}
