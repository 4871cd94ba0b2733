package tables

import (
	"maps"
	"strings"
	"sync"
	"testing"
)

func TestNewDistmethod(t *testing.T) {
	for _, name := range []string{"", "roundrobin"} {
		m, err := NewDistmethod(name)
		if err != nil {
			t.Errorf("NewDistmethod(%q): %v", name, err)
		}
		if _, ok := m.(RoundRobin); !ok {
			t.Errorf("NewDistmethod(%q) = %T, want RoundRobin", name, m)
		}
	}
	if _, err := NewDistmethod("hotstandby"); err == nil || !strings.Contains(err.Error(), `"hotstandby"`) {
		t.Errorf("unknown method: error %v does not name it", err)
	}
}

// pick draws n connections for (vipa1, 80) and counts them per node.
func pick(d *DPT, m Distmethod, n int) map[string]int {
	got := map[string]int{}
	for range n {
		g := d.Lookup(vipa1, 80)
		got[g.Targets()[m.Start(g)].Node]++
	}
	return got
}

func TestRoundRobin(t *testing.T) {
	d := NewDPT()
	for _, n := range []string{"a", "b", "c"} {
		d.Set(row(vipa1, 80, n, 1))
	}
	rr := RoundRobin{}

	if got, want := pick(d, rr, 30), map[string]int{"a": 10, "b": 10, "c": 10}; !maps.Equal(got, want) {
		t.Errorf("30 picks = %v, want %v", got, want)
	}

	// The rotation continues across snapshots, whether the change touched
	// this group or another one.
	g := d.Lookup(vipa1, 80)
	if i := rr.Start(g); g.Targets()[i].Node != "a" {
		t.Fatalf("pick 31 = %s, want a", g.Targets()[i].Node)
	}
	d.Set(row(vipa2, 80, "a", 1))
	g = d.Lookup(vipa1, 80)
	if i := rr.Start(g); g.Targets()[i].Node != "b" {
		t.Errorf("after an unrelated update: pick = %s, want b", g.Targets()[i].Node)
	}
	d.Set(row(vipa1, 80, "a", 5))
	g = d.Lookup(vipa1, 80)
	if i := rr.Start(g); g.Targets()[i].Node != "c" {
		t.Errorf("after a ready update in the group: pick = %s, want c", g.Targets()[i].Node)
	}

	d.Set(row(vipa1, 80, "d", 1))
	if got, want := pick(d, rr, 40), map[string]int{"a": 10, "b": 10, "c": 10, "d": 10}; !maps.Equal(got, want) {
		t.Errorf("after adding d, 40 picks = %v, want %v", got, want)
	}
	d.Delete(vipa1, 80, "b")
	q := row(vipa1, 80, "c", 1)
	q.State = Quiesced
	d.Set(q)
	if got, want := pick(d, rr, 20), map[string]int{"a": 10, "d": 10}; !maps.Equal(got, want) {
		t.Errorf("after removing b and quiescing c, 20 picks = %v, want %v", got, want)
	}
}

func TestRoundRobinEmpty(t *testing.T) {
	d := NewDPT()
	if i := (RoundRobin{}).Start(d.Lookup(vipa1, 80)); i != 0 {
		t.Errorf("Start(nil) = %d", i)
	}
	q := row(vipa1, 80, "a", 1)
	q.State = Quiesced
	d.Set(q)
	if i := (RoundRobin{}).Start(d.Lookup(vipa1, 80)); i != 0 {
		t.Errorf("Start(all quiesced) = %d", i)
	}
}

func TestRoundRobinConcurrent(t *testing.T) {
	d := NewDPT()
	for _, n := range []string{"a", "b", "c"} {
		d.Set(row(vipa1, 80, n, 1))
	}
	const workers, each = 8, 3000
	counts := make([]map[string]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { counts[w] = pick(d, RoundRobin{}, each) })
	}
	wg.Wait()
	total := map[string]int{}
	for _, c := range counts {
		for n, k := range c {
			total[n] += k
		}
	}
	if want := map[string]int{"a": 8000, "b": 8000, "c": 8000}; !maps.Equal(total, want) {
		t.Errorf("concurrent picks = %v, want %v", total, want)
	}
}
