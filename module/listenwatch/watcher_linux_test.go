package listenwatch

import (
	"maps"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestWatcherSystem(t *testing.T) {
	defer goleak.VerifyNone(t)
	changes, errs := make(chan Snapshot, 1000), make(chan error, 100)
	w := &Watcher{
		Interval: 5 * time.Millisecond,
		OnChange: func(s Snapshot) { changes <- s },
		OnError:  func(err error) { errs <- err },
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// Other processes may change the table too: wait for the expected
	// snapshot, checking that every report is a change.
	prev := receive(t, changes)
	waitFor := func(cond func(Snapshot) bool) {
		t.Helper()
		for !cond(prev) {
			s := receive(t, changes)
			if maps.Equal(s, prev) {
				t.Fatalf("OnChange with an unchanged snapshot %v", s)
			}
			prev = s
		}
	}
	ln := listen(t, "127.0.0.46:0", false)
	ap := addrPort(ln)
	waitFor(func(s Snapshot) bool { return s[ap] == 1 })
	ln.Close()
	waitFor(func(s Snapshot) bool { return s[ap] == 0 })
	w.Stop()
	none(t, errs)
}
