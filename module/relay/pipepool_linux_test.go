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
	small := &pipe{r: -1, w: -1, size: p.size / 2}
	pp.put(small)
	if pp.idle() != 1 {
		t.Fatalf("%d idle pipes, want 1", pp.idle())
	}
	for range maxIdlePipes + 2 {
		q, err := newPipe()
		if err != nil {
			t.Fatal(err)
		}
		pp.put(q)
	}
	if pp.idle() != maxIdlePipes {
		t.Fatalf("%d idle pipes, want at most %d", pp.idle(), maxIdlePipes)
	}
	for pp.idle() > 0 {
		q, _ := pp.get()
		q.close()
	}
}
