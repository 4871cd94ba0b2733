package tables

import (
	"net/netip"
	"sync"
	"testing"
	"unsafe"
)

// TestAffinityConcurrentSweep: connections of many clients count and
// release their affinities without locks while sweeps take expired records
// out and reuse them for other clients. A connection's record is always
// its own client's, and its affinity holds while it is open. Clients
// change target from one pass to the next: once all is swept, no row
// counts an affinity and no shard a record (half the goroutines' records
// are counted by their rows, as hotstandby's are).
func TestAffinityConcurrentSweep(t *testing.T) {
	tgs := targets(t, "a", "b")
	var a affinityTable
	var wg sync.WaitGroup
	done := make(chan struct{})
	sweeps := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				sweeps <- n
				return
			default:
				a.sweep(monoNow())
				n++
			}
		}
	}()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				// 600 clients per goroutine: records expire (ttl 1 ns),
				// are swept, and are reused for others.
				client := netip.AddrFrom4([4]byte{10, byte(g), byte(i % 600 >> 8), byte(i % 600)})
				tg := tgs[i/600%2]
				k := affKeyOf(vipa1, 80, client)
				_, _, rec, gen := a.lookup(k, monoNow())
				v := a.commit(vipa1, 80, client, tg, 1, g%2 == 0, rec, gen)
				if !v.is(&k) || affActive(v.state.Load()) < 1 {
					t.Errorf("client %v counted on another's record or not at all", client)
					return
				}
				if node, ok, _, _ := a.lookup(k, monoNow()); !ok || node != tg.Node {
					t.Errorf("client %v with an open connection has no affinity (%q, %v)", client, node, ok)
					return
				}
				a.release(v, monoNow)
			}
		}()
	}
	wg.Wait()
	close(done)
	if n := <-sweeps; n == 0 {
		t.Error("no sweep ran during the connections")
	}
	if n := a.sweep(monoNow() + 1); n != 0 {
		t.Errorf("%d affinities left after every connection ended and expired", n)
	}
	for _, tg := range tgs {
		if n := tg.stats.affined(); n != 0 {
			t.Errorf("row %s counts %d affinities after all were swept", tg.Node, n)
		}
	}
	for i := range a.shards {
		if n := a.shards[i].n.Load(); n != 0 {
			t.Errorf("shard %d counts %d records after all were swept", i, n)
		}
	}
}

// TestAffinityStaleRecord: a record that ranking found, then swept and
// reused for another client of its shard, is not counted for the first.
func TestAffinityStaleRecord(t *testing.T) {
	tg := targets(t, "a")[0]
	var a affinityTable
	ca := netip.MustParseAddr("192.0.2.1")
	ka := affKeyOf(vipa1, 80, ca)
	cb := ca
	for kb := affKeyOf(vipa1, 80, cb); cb == ca || a.shard(kb.hash()) != a.shard(ka.hash()); kb = affKeyOf(vipa1, 80, cb) {
		cb = cb.Next()
	}
	a.release(a.commit(vipa1, 80, ca, tg, 1, true, nil, 0), monoNow)
	_, _, rec, gen := a.lookup(ka, monoNow())
	if rec == nil {
		t.Fatal("no record for a client whose affinity just expired")
	}
	if n := a.sweep(monoNow() + 1); n != 0 {
		t.Fatalf("%d affinities left", n)
	}
	vb := a.commit(vipa1, 80, cb, tg, 1, false, nil, 0)
	if vb != rec {
		t.Fatal("the swept record was not reused")
	}
	va := a.commit(vipa1, 80, ca, tg, 1, true, rec, gen)
	if va == vb || !va.is(&ka) || affActive(va.state.Load()) != 1 || affActive(vb.state.Load()) != 1 {
		t.Errorf("stale record counted: a's record %p (is a: %v, active %d), b's %p (active %d)",
			va, va.is(&ka), affActive(va.state.Load()), vb, affActive(vb.state.Load()))
	}
	// a's records are counted by the row, b's (reusing a's first) is not.
	if n := tg.stats.affined(); n != 1 {
		t.Errorf("the row counts %d affinities, want a's live one", n)
	}
	if vb.duration() != 1 || va.duration() != 1 {
		t.Errorf("durations %d and %d, want 1", va.duration(), vb.duration())
	}
}

// A record fits one cache line (its size class is 64 bytes): the
// connection path's lookup, commit and release each touch one line.
func TestAffinityRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(affinity{}); n != 64 {
		t.Fatalf("affinity record is %d bytes, want 64", n)
	}
}
