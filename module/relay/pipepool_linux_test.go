package relay

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestPipePoolReuse(t *testing.T) {
	var pp pipePool
	p, err := pp.get()
	if err != nil {
		t.Fatal(err)
	}
	if p.size < 64<<10 {
		t.Fatalf("pipe of %d bytes", p.size)
	}
	// The pipe is non-blocking: an empty read does not wait.
	if _, err := unix.Read(p.r, make([]byte, 1)); err != unix.EAGAIN {
		t.Fatalf("read from empty pipe: %v, want EAGAIN", err)
	}
	pp.put(p)
	if q, _ := pp.get(); q != p {
		t.Fatal("an idle pipe was not reused")
	}
	pp.put(p)
	// A pipe smaller than the pool's best is closed, not kept.
	small, err := newPipe()
	if err != nil {
		t.Fatal(err)
	}
	small.size = p.size / 2
	pp.lent++
	pp.put(small)
	if idle, lent := pp.counts(); idle != 1 || lent != 0 {
		t.Fatalf("%d idle and %d lent pipes, want 1 and 0", idle, lent)
	}
	var held []*pipe
	for range maxIdlePipes + 2 {
		q, err := pp.get()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, q)
	}
	if _, lent := pp.counts(); lent != maxIdlePipes+2 {
		t.Fatalf("%d lent pipes, want %d", lent, maxIdlePipes+2)
	}
	for _, q := range held {
		pp.put(q)
	}
	if idle, lent := pp.counts(); idle != maxIdlePipes || lent != 0 {
		t.Fatalf("%d idle and %d lent pipes, want %d and 0", idle, lent, maxIdlePipes)
	}
	for idle, _ := pp.counts(); idle > 0; idle, _ = pp.counts() {
		q, _ := pp.get()
		pp.discard(q)
	}
}
