package listenwatch

import (
	"errors"
	"maps"
	"net/netip"
	"sync"
	"time"
)

// DefaultInterval is the polling interval of a Watcher whose Interval is unset.
const DefaultInterval = 100 * time.Millisecond

// maxErrorTexts bounds the memory of error texts already reported.
const maxErrorTexts = 32

// Watcher polls the socket table (or probes addresses) and reports changes.
// OnChange and OnError are called from the Watcher's goroutine, one at a
// time, and should return quickly. Stop waits for a running callback, so a callback must not call
// Stop or wait for a lock held by a caller of Stop.
type Watcher struct {
	// Interval between scans; DefaultInterval if zero or negative.
	Interval time.Duration
	// OnChange receives the first snapshot and then each one that differs
	// from the one before. The Watcher never modifies a snapshot it has
	// passed on, so the receiver may keep it.
	OnChange func(Snapshot)
	// OnError, if set, receives scan errors; polling continues. Each distinct
	// error text is reported once until a scan succeeds again.
	OnError func(error)
	// Probe, if set, makes the Watcher connect to the addresses it returns
	// instead of reading the socket table; an address that accepts counts as
	// one listening socket. It is called before each scan, from the
	// Watcher's goroutine. A probing Watcher's default Interval is
	// DefaultProbeInterval.
	Probe func() []netip.AddrPort

	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
	// scan replaces the system scanner in tests.
	scan func(Snapshot) error
}

// Start scans once right away in a new goroutine and then every Interval. It
// fails if the Watcher is running, OnChange is nil, or the system cannot be
// scanned at all.
func (w *Watcher) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop != nil {
		return errors.New("listenwatch: watcher already started")
	}
	if w.OnChange == nil {
		return errors.New("listenwatch: watcher has no OnChange")
	}
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultInterval
		if w.Probe != nil {
			interval = DefaultProbeInterval
		}
	}
	scan, closeScan := w.scan, func() {}
	if scan == nil && w.Probe != nil {
		scan = (&prober{addrs: w.Probe, timeout: min(max(interval, minProbeTimeout), maxProbeTimeout)}).scan
	}
	if scan == nil {
		sc, err := newScanner()
		if err != nil {
			return err
		}
		scan, closeScan = sc.scan, sc.close
	}
	// The goroutine works on copies, so the fields may change while it runs.
	p := &poller{interval: interval, scan: scan, onChange: w.OnChange, onError: w.OnError}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func(stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		defer closeScan()
		p.run(stop)
	}(w.stop, w.done)
	return nil
}

// Stop ends polling and waits for the goroutine to exit. It may be called
// without Start and more than once; a stopped Watcher can be started again.
func (w *Watcher) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop == nil {
		return
	}
	close(w.stop)
	<-w.done
	w.stop, w.done = nil, nil
}

// poller is the state of one running Watcher goroutine.
type poller struct {
	interval time.Duration
	scan     func(Snapshot) error
	onChange func(Snapshot)
	onError  func(error)
	reported map[string]struct{}
}

func (p *poller) run(stop <-chan struct{}) {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	// prev has been passed to onChange and is read-only; next is scratch
	// space, replaced only when it is handed out.
	var prev Snapshot
	next := make(Snapshot)
	for {
		if err := p.scan(next); err != nil {
			p.reportError(err)
		} else {
			clear(p.reported)
			if prev == nil || !maps.Equal(prev, next) {
				prev, next = next, make(Snapshot, len(next))
				p.onChange(prev)
			}
		}
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
	}
}

func (p *poller) reportError(err error) {
	if p.onError == nil {
		return
	}
	text := err.Error()
	if _, ok := p.reported[text]; ok {
		return
	}
	if p.reported == nil || len(p.reported) >= maxErrorTexts {
		p.reported = make(map[string]struct{})
	}
	p.reported[text] = struct{}{}
	p.onError(err)
}
