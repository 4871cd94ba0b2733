package relay

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// countFDs counts this process's descriptors whose link starts with prefix.
func countFDs(tb testing.TB, prefix string) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// A TCP client takes the poller, whose relays share their pollers' epoll
// sets: none is opened per connection.
func TestPollersShared(t *testing.T) {
	pick()
	all := pollers
	before := countFDs(t, "anon_inode:[eventpoll]")
	const conns = 40
	for range conns {
		r := newRig(t, modes[0], nil, 0)
		r.client.Write([]byte("x"))
		io.ReadFull(r.backend, make([]byte, 1))
	}
	// Sockets aside, relays hold no descriptor while idle.
	if got := countFDs(t, "pipe:") + countFDs(t, "anon_inode:[eventfd]"); got > maxIdlePipes*2+len(all) {
		t.Fatalf("%d pipe and eventfd descriptors held by %d idle relays", got, conns)
	}
	if got := countFDs(t, "anon_inode:[eventpoll]") - before; got > len(all) {
		t.Fatalf("%d epoll sets opened by %d relays, want at most %d", got, conns, len(all))
	}
}

// After traffic, idle relays hold no pipe: all are back in the pool.
func TestNoPipeHeldWhenIdle(t *testing.T) {
	const conns = 32
	for range conns {
		r := newRig(t, modes[0], nil, 0)
		// A user-space echo: io.Copy between two TCP sockets would splice.
		go io.Copy(struct{ io.Writer }{r.backend}, struct{ io.Reader }{r.backend})
		r.client.Write(make([]byte, 200<<10))
		io.ReadFull(r.client, make([]byte, 200<<10))
	}
	// The last bytes reach the client just before the relay gives back
	// its pipe.
	deadline := time.Now().Add(time.Second)
	for _, lent := pipes.counts(); lent != 0; _, lent = pipes.counts() {
		if time.Now().After(deadline) {
			t.Fatalf("idle relays hold %d pipes", lent)
		}
		time.Sleep(time.Millisecond)
	}
}

// A reset on a side whose direction is already finished still ends the relay.
func TestResetAfterHalfClose(t *testing.T) {
	r := newRig(t, modes[0], nil, 0)
	r.client.CloseWrite()
	if _, err := io.ReadAll(r.backend); err != nil {
		t.Fatal(err)
	}
	reset(r.client)
	if err := r.wait(t, 2*time.Second); err == nil {
		t.Fatal("the relay ended without error after a reset")
	}
	// The relay closed the target: the backend's write half gets nowhere.
	r.backend.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := r.backend.Read(make([]byte, 1)); err == nil {
		t.Fatal("target side still open")
	}
}
