package listenwatch

import (
	"errors"
	"maps"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeTable stands in for the kernel's socket table.
type fakeTable struct {
	mu    sync.Mutex
	s     Snapshot
	err   error
	scans int
}

func (f *fakeTable) scan(into Snapshot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scans++
	if f.err != nil {
		return f.err
	}
	clear(into)
	maps.Copy(into, f.s)
	return nil
}

func (f *fakeTable) set(s Snapshot, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s, f.err = s, err
}

// settle waits until the table has been scanned n more times.
func (f *fakeTable) settle(t *testing.T, n int) {
	t.Helper()
	f.mu.Lock()
	target := f.scans + n
	f.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		done := f.scans >= target
		f.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("watcher stopped scanning")
		}
		time.Sleep(time.Millisecond)
	}
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
		var zero T
		return zero
	}
}

func none[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %v", v)
	default:
	}
}

func newFakeWatcher(f *fakeTable) (*Watcher, chan Snapshot, chan error) {
	changes, errs := make(chan Snapshot, 100), make(chan error, 100)
	w := &Watcher{
		Interval: time.Millisecond,
		OnChange: func(s Snapshot) { changes <- s },
		OnError:  func(err error) { errs <- err },
		scan:     f.scan,
	}
	return w, changes, errs
}

func TestWatcherReportsChanges(t *testing.T) {
	defer goleak.VerifyNone(t)
	a := netip.MustParseAddrPort("127.0.0.1:8080")
	f := &fakeTable{s: Snapshot{}}
	w, changes, errs := newFakeWatcher(f)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	first := receive(t, changes)
	if len(first) != 0 {
		t.Fatalf("first snapshot %v, want empty", first)
	}
	f.settle(t, 5)
	none(t, changes)

	f.set(Snapshot{a: 1}, nil)
	if s := receive(t, changes); !maps.Equal(s, Snapshot{a: 1}) {
		t.Fatalf("got %v", s)
	}
	f.settle(t, 5)
	none(t, changes)
	if len(first) != 0 {
		t.Fatalf("a snapshot passed on was modified: %v", first)
	}

	f.set(Snapshot{a: 2}, nil)
	if s := receive(t, changes); !maps.Equal(s, Snapshot{a: 2}) {
		t.Fatalf("got %v", s)
	}
	f.set(Snapshot{}, nil)
	if s := receive(t, changes); len(s) != 0 {
		t.Fatalf("got %v", s)
	}
	none(t, errs)
}

func TestWatcherRateLimitsErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	errA, errB := errors.New("a"), errors.New("b")
	f := &fakeTable{err: errA}
	w, changes, errs := newFakeWatcher(f)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	if err := receive(t, errs); err != errA {
		t.Fatalf("got %v", err)
	}
	f.settle(t, 5)
	none(t, errs)
	none(t, changes)

	f.set(nil, errB)
	if err := receive(t, errs); err != errB {
		t.Fatalf("got %v", err)
	}
	f.set(nil, errors.New("a")) // same text as errA, already reported
	f.settle(t, 5)
	none(t, errs)

	// A successful scan resets the memory of reported errors.
	f.set(Snapshot{}, nil)
	receive(t, changes)
	f.set(nil, errA)
	if err := receive(t, errs); err != errA {
		t.Fatalf("got %v", err)
	}
	f.set(Snapshot{}, nil)
	f.settle(t, 5)
	none(t, changes) // an error in between is not a change
}

func TestWatcherStartStop(t *testing.T) {
	defer goleak.VerifyNone(t)
	var w Watcher
	w.Stop() // without Start
	if err := w.Start(); err == nil {
		t.Fatal("Start without OnChange succeeded")
	}

	f := &fakeTable{s: Snapshot{}}
	w2, changes, _ := newFakeWatcher(f)
	w2.OnError = nil
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	receive(t, changes)
	w2.Stop()
	w2.Stop()
	goleak.VerifyNone(t)

	// A stopped Watcher starts afresh and reports the first snapshot again.
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	receive(t, changes)
	f.set(nil, errors.New("ignored without OnError"))
	f.settle(t, 3)
	w2.Stop()
}

func TestWatcherStopDuringCallback(t *testing.T) {
	defer goleak.VerifyNone(t)
	entered, release := make(chan struct{}), make(chan struct{})
	w := &Watcher{
		Interval: time.Millisecond,
		OnChange: func(Snapshot) { close(entered); <-release },
		scan:     (&fakeTable{s: Snapshot{}}).scan,
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	<-entered
	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while OnChange was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-stopped
}
