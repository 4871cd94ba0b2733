package tables

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

func targets(t testing.TB, names ...string) []*Target {
	t.Helper()
	d := NewDPT()
	for _, n := range names {
		d.Set(row(vipa1, 80, n, 1))
	}
	return d.Lookup(vipa1, 80).Targets()
}

func client(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i >> 16)}), uint16(i))
}

func insert(c *CRT, tg *Target, i int) *Entry {
	e := c.Acquire()
	e.Client, e.VIPA, e.Port, e.Target = client(i), vipa1, 80, tg
	c.Insert(e)
	return e
}

func clients(c *CRT) []netip.AddrPort {
	var got []netip.AddrPort
	c.Range(func(e *Entry) bool {
		got = append(got, e.Client)
		return true
	})
	slices.SortFunc(got, netip.AddrPort.Compare)
	return got
}

func TestEntrySize(t *testing.T) {
	// 112 bytes is a malloc size class; the budget is 200 per live entry.
	if s := unsafe.Sizeof(Entry{}); s > 112 {
		t.Errorf("Entry is %d bytes, want <= 112", s)
	}
}

func TestCRT(t *testing.T) {
	ts := targets(t, "a", "b")
	a, b := ts[0], ts[1]
	c := NewCRT()

	e1 := insert(c, a, 1)
	e2 := insert(c, a, 2)
	e3 := insert(c, b, 3)
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
	}
	if e1.Since == 0 {
		t.Error("Insert left Since zero")
	}
	if a.ActiveConns() != 2 || a.TotalConns() != 2 || b.ActiveConns() != 1 || b.TotalConns() != 1 {
		t.Errorf("counts a %d/%d b %d/%d", a.ActiveConns(), a.TotalConns(), b.ActiveConns(), b.TotalConns())
	}
	if got, want := clients(c), []netip.AddrPort{client(1), client(2), client(3)}; !slices.Equal(got, want) {
		t.Errorf("Range = %v, want %v", got, want)
	}

	e2.ToTarget.Store(10)
	e2.ToClient.Store(20)
	c.Remove(e2)
	c.Remove(e2) // a second Remove is a no-op
	if c.Len() != 2 || a.ActiveConns() != 1 || a.TotalConns() != 2 {
		t.Errorf("after Remove: Len %d, a %d/%d", c.Len(), a.ActiveConns(), a.TotalConns())
	}
	if r := a.Row(); r.BytesToTarget != 10 || r.BytesToClient != 20 {
		t.Errorf("a's bytes after Remove: %d to target, %d to client; want 10, 20", r.BytesToTarget, r.BytesToClient)
	}
	if got, want := clients(c), []netip.AddrPort{client(1), client(3)}; !slices.Equal(got, want) {
		t.Errorf("Range = %v, want %v", got, want)
	}
	c.Release(e2)

	// Release removes an entry still in the table; its bytes count for its
	// target.
	e1.ToTarget.Store(5)
	c.Release(e1)
	if ra, rb := a.Row(), b.Row(); ra.BytesToTarget != 15 || rb.BytesToTarget != 0 || a.ActiveConns() != 0 || a.TotalConns() != 2 {
		t.Errorf("after Release: a %d bytes to target, %d/%d; b %d bytes; want 15, 0/2, 0", ra.BytesToTarget, a.ActiveConns(), a.TotalConns(), rb.BytesToTarget)
	}
	c.Remove(e3)
	c.Release(e3)
	if c.Len() != 0 || a.ActiveConns() != 0 || b.ActiveConns() != 0 {
		t.Errorf("after all released: Len %d, active a %d b %d", c.Len(), a.ActiveConns(), b.ActiveConns())
	}
	if got := clients(c); got != nil {
		t.Errorf("Range of empty table = %v", got)
	}
}

func TestCRTAcquireZeroed(t *testing.T) {
	c := NewCRT()
	tg := targets(t, "a")[0]
	for i := range 100 {
		e := c.Acquire()
		if e.Client.IsValid() || e.VIPA.IsValid() || e.Port != 0 || e.Target != nil || e.Since != 0 ||
			e.ToTarget.Load() != 0 || e.ToClient.Load() != 0 || e.linked || e.affine || e.aff != nil {
			t.Fatalf("Acquire %d returned a used entry: %+v", i, e)
		}
		e.Client, e.Target = client(i), tg
		c.Insert(e)
		e.ToTarget.Add(10)
		e.ToClient.Add(20)
		c.Remove(e)
		c.Release(e)
	}
}

func TestCRTDoubleInsertPanics(t *testing.T) {
	c := NewCRT()
	e := insert(c, targets(t, "a")[0], 1)
	defer func() {
		if recover() == nil {
			t.Error("second Insert did not panic")
		}
		c.Release(e)
	}()
	c.Insert(e)
}

func TestCRTRangeStop(t *testing.T) {
	c := NewCRT()
	tg := targets(t, "a")[0]
	for i := range 1000 {
		insert(c, tg, i)
	}
	n := 0
	c.Range(func(e *Entry) bool {
		n++
		return n < 10
	})
	if n != 10 {
		t.Errorf("Range visited %d after stop at 10", n)
	}
}

// TestCRTRangeWhileChanging runs Range across batch boundaries while other
// goroutines insert and remove: entries present throughout must all be seen,
// once each.
func TestCRTRangeWhileChanging(t *testing.T) {
	c := NewCRT()
	tg := targets(t, "a")[0]
	const stable = 20000
	var keep []*Entry
	for i := range stable {
		keep = append(keep, insert(c, tg, i))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			var mine []*Entry
			for i := 0; ; i++ {
				select {
				case <-stop:
					for _, e := range mine {
						c.Release(e)
					}
					return
				default:
				}
				mine = append(mine, insert(c, tg, stable+w*1000000+i))
				if len(mine) > 100 {
					c.Release(mine[0])
					mine = mine[1:]
				}
			}
		})
	}
	for range 5 {
		seen := map[*Entry]int{}
		c.Range(func(e *Entry) bool {
			seen[e]++
			_ = e.Client
			_ = e.Target.Node
			return true
		})
		for _, e := range keep {
			if seen[e] != 1 {
				t.Fatalf("stable entry seen %d times", seen[e])
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, e := range keep {
		c.Release(e)
	}
	if c.Len() != 0 || tg.ActiveConns() != 0 {
		t.Errorf("Len %d, active %d, want 0, 0", c.Len(), tg.ActiveConns())
	}
}

func TestCRTConcurrent(t *testing.T) {
	ts := targets(t, "a", "b", "c")
	c := NewCRT()
	const workers, each = 16, 5000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var live []*Entry
			for i := range each {
				e := insert(c, ts[i%len(ts)], w*each+i)
				e.ToTarget.Add(1)
				live = append(live, e)
				if i%3 == 0 {
					c.Remove(live[0])
					c.Release(live[0])
					live = live[1:]
				}
			}
			for _, e := range live {
				c.Remove(e)
				c.Release(e)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			c.Range(func(e *Entry) bool { return e.Target != nil })
			_ = c.Len()
		}
	})
	wg.Wait()
	if c.Len() != 0 {
		t.Errorf("Len = %d, want 0", c.Len())
	}
	var total uint64
	for _, tg := range ts {
		if tg.ActiveConns() != 0 {
			t.Errorf("%s active = %d, want 0", tg.Node, tg.ActiveConns())
		}
		total += tg.TotalConns()
	}
	if total != workers*each {
		t.Errorf("total = %d, want %d", total, workers*each)
	}
}

// TestCRTMove: a retry moves a dialing connection's entry to the next
// target; the active count follows it, the totals only grow.
func TestCRTMove(t *testing.T) {
	ts := targets(t, "a", "b")
	a, b := ts[0], ts[1]
	c := NewCRT()
	e := insert(c, a, 1)
	c.Move(e, b, Why{Rule: ReasonRoundRobin, Offered: ReasonNext, Failed: 1}, "a")
	if a.ActiveConns() != 0 || a.TotalConns() != 1 || b.ActiveConns() != 1 || b.TotalConns() != 1 {
		t.Errorf("after Move: a %d/%d b %d/%d; want 0/1 1/1", a.ActiveConns(), a.TotalConns(), b.ActiveConns(), b.TotalConns())
	}
	var on []string
	c.Range(func(e *Entry) bool {
		on = append(on, e.Target.Node)
		return true
	})
	if !slices.Equal(on, []string{"b"}) {
		t.Errorf("Range sees the entry on %q, want b", on)
	}
	c.Release(e)
	if c.Len() != 0 || b.ActiveConns() != 0 {
		t.Errorf("after Release: Len %d, b active %d", c.Len(), b.ActiveConns())
	}
}
