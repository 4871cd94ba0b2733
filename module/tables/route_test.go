package tables

import (
	"net/netip"
	"runtime"
	"testing"
)

// prefill is how many other connections are live while routing is measured.
const prefill = 1_000_000

// routeBench is built once per process: prefilling is slow, and the
// benchmark function runs several times while b.N grows.
var routeBench struct {
	dpt      *DPT
	crt      *CRT
	dm       Distmethod
	perEntry float64 // heap bytes per live CRT entry
}

func routeSetup(b *testing.B) {
	if routeBench.dpt != nil {
		return
	}
	d := NewDPT()
	for _, n := range []string{"a", "b", "c"} {
		d.Set(row(vipa1, 80, n, 1))
	}
	dm, err := NewDistmethod("roundrobin")
	if err != nil {
		b.Fatal(err)
	}
	c := NewCRT()
	ts := d.Lookup(vipa1, 80).Targets()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range prefill {
		e := c.Acquire()
		e.Client, e.VIPA, e.Port, e.Target = client(i), vipa1, 80, ts[i%len(ts)]
		c.Insert(e)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if c.Len() != prefill {
		b.Fatalf("prefilled %d entries", c.Len())
	}
	routeBench.dpt, routeBench.crt, routeBench.dm = d, c, dm
	routeBench.perEntry = float64(after.HeapAlloc-before.HeapAlloc) / prefill
}

// BenchmarkRoute measures the control work of one connection: DPT lookup,
// distmethod, CRT insert, and the removal of a connection routed 256
// connections earlier on the same goroutine, with a million others live.
func BenchmarkRoute(b *testing.B) {
	routeSetup(b)
	d, c, dm := routeBench.dpt, routeBench.crt, routeBench.dm
	vipa := vipa1
	from := netip.MustParseAddrPort("192.0.2.1:40000")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ring [256]*Entry
		i := 0
		for pb.Next() {
			g := d.Lookup(vipa, 80)
			t := g.Targets()[dm.Start(g)]
			e := c.Acquire()
			e.Client, e.VIPA, e.Port, e.Target = from, vipa, 80, t
			c.Insert(e)
			if old := ring[i]; old != nil {
				c.Remove(old)
				c.Release(old)
			}
			ring[i] = e
			i = (i + 1) % len(ring)
		}
		for _, e := range ring {
			if e != nil {
				c.Remove(e)
				c.Release(e)
			}
		}
	})
	b.StopTimer()
	if c.Len() != prefill {
		b.Fatalf("Len = %d after the run, want %d", c.Len(), prefill)
	}
	b.ReportMetric(routeBench.perEntry, "B/entry")
}

func BenchmarkLookup(b *testing.B) {
	d := NewDPT()
	for _, n := range []string{"a", "b", "c"} {
		d.Set(row(vipa1, 80, n, 1))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d.Lookup(vipa1, 80).Len() != 3 {
				b.Error("lookup failed")
			}
		}
	})
}

func BenchmarkCRTInsertRemove(b *testing.B) {
	tg := targets(b, "a")[0]
	c := NewCRT()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := c.Acquire()
			e.Target = tg
			c.Insert(e)
			c.Remove(e)
			c.Release(e)
		}
	})
}
