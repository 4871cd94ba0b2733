package tables

import (
	"runtime"
	"testing"
)

// oneProcessor runs the test on one processor (P): leastconn and
// weightedactive rotate their ties per processor, and a goroutine moved
// to another one between two picks would continue that one's rotation.
func oneProcessor(t testing.TB) {
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// Set inserts or updates the row (r.VIPA, r.Port, r.Node). A row with
// Ready <= 0 is deleted instead. Production code replaces a node's rows
// whole (Replace); tests build tables row by row.
func (d *DPT) Set(r Row) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.edit()
	e.set(r)
	e.commit()
}
