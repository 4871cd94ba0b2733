package relay

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// Small messages into a target that does not read fill its socket: the
// bytes a write refuses wait in a pipe, in order, until it reads again.
func TestSmallMessagesStalledTarget(t *testing.T) {
	r := newRig(t, modes[0], nil, 0)
	const msgs, size = 30000, 100
	var want bytes.Buffer
	go func() {
		msg := make([]byte, size)
		for i := range msgs {
			for j := range msg {
				msg[j] = byte(i + j)
			}
			want.Write(msg) // read only after the writer is done
			if _, err := r.client.Write(msg); err != nil {
				return
			}
		}
		r.client.CloseWrite()
	}()
	time.Sleep(200 * time.Millisecond) // let the target's socket fill
	got, err := io.ReadAll(r.backend)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("backend got %d bytes, want %d, or out of order", len(got), want.Len())
	}
	if n := r.toTarget.Load(); n != int64(len(got)) {
		t.Fatalf("ToTarget = %d, want %d", n, len(got))
	}
}

// The poller's goroutine lives only while it has relays, and a slot freed
// by one relay serves the next.
func TestPollerStopsWhenIdle(t *testing.T) {
	slotsBefore := map[*poller]int{}
	pick()
	for _, p := range pollers {
		p.mu.Lock()
		slotsBefore[p] = max(1, len(p.slots))
		p.mu.Unlock()
	}
	for round := range 3 {
		t.Run("", func(t *testing.T) {
			r := newRig(t, modes[0], nil, 0)
			r.client.Write([]byte{byte(round)})
			if _, err := io.ReadFull(r.backend, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
		})
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, p := range pollers {
		for {
			p.mu.Lock()
			running, live, slots := p.running, p.live, len(p.slots)
			p.mu.Unlock()
			if !running && live == 0 {
				if slots > slotsBefore[p] {
					t.Errorf("%d slots for relays run one at a time, %d before", slots, slotsBefore[p])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("poller still running with %d relays", live)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
