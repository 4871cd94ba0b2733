package fleet

import (
	"net/netip"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestParseProcStat(t *testing.T) {
	stat := "cpu  100 20 30 800 50 5 5 10 7 0\ncpu0 50 10 15 400 25 2 2 5 3 0\nintr 1 2 3\n"
	got, err := parseProcStat([]byte(stat))
	if want := (cpuTimes{idle: 850, total: 1020}); err != nil || got != want {
		t.Fatalf("got %+v %v, want %+v", got, err, want)
	}
	// Old kernels have fewer columns.
	if got, err := parseProcStat([]byte("cpu 1 2 3 4\n")); err != nil || got != (cpuTimes{idle: 4, total: 10}) {
		t.Fatalf("four columns: %+v %v", got, err)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5\n", "cpu 1 2 x 4 5\n", "cpu 1 2\n", "intr 1\ncpu 1 2 3 4 5\n"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWeightOf(t *testing.T) {
	base := cpuTimes{idle: 5000, total: 10000}
	for _, tc := range []struct {
		idle, total uint64 // added in the window
		want        int
		ok          bool
	}{
		{400, 400, 100, true}, // idle: full weight
		{0, 400, 1, true},     // busy: the least weight, never 0
		{100, 400, 25, true},
		{398, 400, 100, true}, // rounded
		{2, 1000, 1, true},
		{5, 1000, 1, true},    // 0.5 rounds up to 1
		{15, 1000, 2, true},   // 1.5 rounds to 2
		{0, 0, 0, false},      // no time passed
		{500, 400, 100, true}, // idle beyond total is capped
	} {
		got, ok := weightOf(base, cpuTimes{idle: base.idle + tc.idle, total: base.total + tc.total})
		if got != tc.want || ok != tc.ok {
			t.Errorf("idle %d of %d: %d %v, want %d %v", tc.idle, tc.total, got, ok, tc.want, tc.ok)
		}
	}
	// Counters that went back (a wrapped or reset counter) measure nothing.
	if _, ok := weightOf(base, cpuTimes{idle: 1, total: 20000}); ok {
		t.Error("idle going back measured")
	}
	if _, ok := weightOf(base, cpuTimes{idle: 6000, total: 9000}); ok {
		t.Error("total going back measured")
	}
}

// The published weight moves only by the step or more.
func TestHysteresis(t *testing.T) {
	h := hysteresis{step: 10}
	steps := []struct {
		measure, published int
		changed            bool
	}{
		{70, 70, true}, // the first is published
		{75, 70, false},
		{61, 70, false},
		{80, 80, true},
		{71, 80, false},
		{70, 70, true},
		{100, 100, true},
		{91, 100, false},
		{1, 1, true},
		{10, 1, false},
		{11, 11, true},
	}
	for i, s := range steps {
		if changed := h.update(s.measure); changed != s.changed || h.published != s.published {
			t.Fatalf("step %d (measure %d): changed %v published %d, want %v %d", i, s.measure, changed, h.published, s.changed, s.published)
		}
	}
}

// A fixed weight goes into the report lines of targetweight VIPAs only,
// so other VIPAs' reports keep an older wire version; auto measures.
func TestSelfWeightInReport(t *testing.T) {
	f := New()
	defer f.Destruct()
	f.cfg = Config{Node: "caddy-b", Advertise: netip.MustParseAddr("10.0.0.12")}
	f.snap = snapshot(map[string]int{"0.0.0.0:80": 1})
	tw := known("10.0.0.101", "caddy-a", true, "all")
	tw.Distmethod = vipa.TargetWeight
	f.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all"), tw})
	f.configureWeight(30)
	weights := func() map[netip.Addr]int {
		out := map[netip.Addr]int{}
		for _, l := range f.OwnReport() {
			out[l.VIPA] = l.Weight
		}
		return out
	}
	if got := weights(); got[vA] != 0 || got[vB] != 30 || f.SelfWeight() != 30 {
		t.Fatalf("fixed 30: %v", got)
	}
	f.configureWeight(0) // no agent to report to: nothing measured
	if got := weights(); got[vB] != 30 || f.sampler != nil {
		t.Fatalf("auto without an agent: %v, sampler %v", got, f.sampler)
	}
	f.configureWeight(7)
	if got := weights(); got[vB] != 7 || f.sampler != nil {
		t.Fatalf("fixed again: %v, sampler %v", got, f.sampler)
	}
}

// The sampler publishes a measured weight at once and stops.
func TestWeightSampler(t *testing.T) {
	got := make(chan int, 1)
	s := startWeightSampler(zap.NewNop(), func(w int) { got <- w })
	defer s.stop()
	if w := <-got; w < 1 || w > 100 {
		t.Fatalf("first weight %d", w)
	}
}
