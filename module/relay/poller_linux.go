package relay

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller runs many relays over one epoll set. The set is itself parked on
// Go's netpoller, so one goroutine waits for every relay of the poller, and
// only while it has relays: it exits with the last one.
type poller struct {
	mu      sync.Mutex
	ep      *os.File // the epoll set, kept open for the process's life
	epfd    int
	rc      syscall.RawConn
	wakefd  int        // eventfd that wakes the loop for the mailbox
	slots   []*splicer // live relays; epoll events carry the index
	gens    []uint32   // generation of each slot, so stale events are ignored
	free    []int32    // unused slots
	live    int        // relays registered
	running bool       // a goroutine runs loop
	mail    []*splicer // relays posted by a timer or a drop
	stepFn  func(uintptr) bool

	sweep      *time.Timer // next keepalive sweep
	sweepArmed bool        // sweep is running
	sweepDue   atomic.Bool // the loop owes a sweep

	// Owned by the loop goroutine.
	events  [128]unix.EpollEvent
	runq    []*splicer // relays to run in this pass
	next    []*splicer // relays that can still move without an event
	pending []*splicer // mailbox taken out of mu
	scratch [copyMax]byte
	armFDs  []int // targets whose keepalive a sweep arms
}

// Epoll data of an event: the slot in Fd, generation and side in Pad.
const (
	wakeSlot = -1 // the eventfd
	genMask  = 1<<30 - 1
)

var (
	pollers     []*poller
	pollersOnce sync.Once
	nextPoller  atomic.Uint32
)

// pick spreads relays over one poller per P (at first use), so relaying
// scales with GOMAXPROCS and one P's worth of relays shares one wake-up.
func pick() *poller {
	pollersOnce.Do(func() {
		n := min(runtime.GOMAXPROCS(0), 16)
		pollers = make([]*poller, n)
		for i := range pollers {
			pollers[i] = &poller{epfd: -1, wakefd: -1}
		}
	})
	if len(pollers) == 1 {
		return pollers[0]
	}
	return pollers[nextPoller.Add(1)%uint32(len(pollers))]
}

// open creates the epoll set and the eventfd on first use. Called with mu.
func (p *poller) open() error {
	if p.ep != nil {
		return nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: wakeSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return err
	}
	// A non-blocking epoll descriptor is pollable: os.File registers it with
	// the runtime's netpoller, which wakes the loop when any socket has an
	// event.
	ep := os.NewFile(uintptr(epfd), "relay-epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		unix.Close(wfd)
		return err
	}
	p.ep, p.epfd, p.rc, p.wakefd = ep, epfd, rc, wfd
	p.stepFn = p.step
	p.sweep = time.AfterFunc(time.Hour, p.sweepTick)
	p.sweep.Stop()
	return nil
}

// claim gives s a free slot and that slot's next generation, so late events
// for the slot's previous relay are ignored. Called with mu.
func (p *poller) claim(s *splicer) int32 {
	var slot int32
	if n := len(p.free); n > 0 {
		slot, p.free = p.free[n-1], p.free[:n-1]
	} else {
		slot = int32(len(p.slots))
		p.slots = append(p.slots, nil)
		p.gens = append(p.gens, 0)
	}
	p.gens[slot] = (p.gens[slot] + 1) & genMask
	s.slot, s.gen = slot, p.gens[slot]
	return slot
}

// start runs the loop if it is not running. Called with mu.
func (p *poller) start() {
	p.armSweep()
	if !p.running {
		p.running = true
		go p.loop()
	}
}

// registerTarget adds a dialed target socket alone, for its handshake
// (dialing) or with its handshake done. Its events only latch its
// readiness until the client joins.
//
// Like joinClient, it runs on the handler's goroutine under caddy-l4's deep
// frames, so it takes no defer and calls epoll_ctl on the raw descriptor
// directly: the dial must not grow that goroutine's stack (see dialRaw).
func (p *poller) registerTarget(s *splicer) error {
	p.mu.Lock()
	if p.ep == nil { // open's frame is large: call it only the first time
		if err := p.open(); err != nil {
			p.mu.Unlock()
			return err
		}
	}
	slot := p.claim(s)
	ev := s.event(1)
	if e := epollCtl(p.epfd, unix.EPOLL_CTL_ADD, s.sides[1].fd, &ev); e != 0 {
		p.free = append(p.free, slot)
		p.mu.Unlock()
		return s.sides[1].error("epoll_ctl", e)
	}
	p.slots[slot] = s
	p.live++
	p.start()
	p.mu.Unlock()
	return nil
}

// joinClient adds the client of a connected target registered by
// registerTarget; from then on events run turns.
func (p *poller) joinClient(s *splicer) error {
	p.mu.Lock()
	if p.slots[s.slot] != s || s.gen != p.gens[s.slot] {
		p.mu.Unlock()
		return errDropped // failAll ended it
	}
	ev := s.event(0)
	if e := epollCtl(p.epfd, unix.EPOLL_CTL_ADD, s.sides[0].fd, &ev); e != 0 {
		p.mu.Unlock()
		return s.sides[0].error("epoll_ctl", e)
	}
	s.joined = true
	p.mu.Unlock()
	return nil
}

// loop serves the poller's relays until none is left.
func (p *poller) loop() {
	if err := p.rc.Read(p.stepFn); err != nil {
		// The epoll file is never closed and has no deadline.
		p.failAll(os.NewSyscallError("epoll", err))
	}
}

// step collects events and runs the relays they concern until nothing can
// move, then returns false to park on the netpoller. Events arriving
// meanwhile are latched by the netpoller (it is not reset between calls),
// so parking cannot miss one. It returns true when no relay is left.
func (p *poller) step(uintptr) bool {
	for {
		n, err := epollPoll(p.epfd, p.events[:])
		if err != nil {
			p.failAll(os.NewSyscallError("epoll_wait", err))
			return true
		}
		mail := p.dispatch(n)
		p.runAll()
		if mail {
			p.readMail()
		}
		p.mu.Lock()
		if p.live == 0 {
			p.running = false
			p.mu.Unlock()
			return true
		}
		p.mu.Unlock()
		// A batch that did not fill the array emptied the ready list; later
		// events wake the netpoller.
		if len(p.runq) == 0 && n < len(p.events) {
			return false
		}
	}
}

// dispatch applies a batch of events to the relays' sides and queues each
// relay concerned once. It reports whether the mailbox was signalled.
func (p *poller) dispatch(n int) (mail bool) {
	p.mu.Lock()
	for _, ev := range p.events[:n] {
		if ev.Fd == wakeSlot {
			mail = true
			continue
		}
		s := p.slots[ev.Fd]
		if s == nil || s.gen != uint32(ev.Pad>>1) {
			continue // the relay ended; its socket was not closed yet
		}
		s.sides[ev.Pad&1].apply(ev.Events)
		if s.joined || s.dialing {
			p.queue(s)
		}
	}
	p.mu.Unlock()
	return mail
}

// queue schedules s for the next run.
func (p *poller) queue(s *splicer) {
	if !s.queued {
		s.queued = true
		p.runq = append(p.runq, s)
	}
}

// runAll gives each queued relay a turn. Relays that could move more (their
// turn was bounded) run again in the next pass, after new events.
func (p *poller) runAll() {
	q := p.runq
	p.runq = p.next[:0]
	for i, s := range q {
		q[i] = nil
		s.queued = false
		if s.ended {
			continue
		}
		if s.dialing {
			p.connect(s)
			continue
		}
		s.armIdle()
		if err := s.pumpAll(); err != nil || s.finished() {
			p.end(s, err)
		} else if s.busy() {
			p.queue(s)
		}
	}
	p.next = q[:0]
}

// post hands s to the loop because its idle timer or dial timeout fired,
// or its target is dropped.
func (p *poller) post(s *splicer, why uint32) {
	if s.wake.Or(why) != 0 {
		return // already in the mailbox
	}
	p.mu.Lock()
	p.mail = append(p.mail, s)
	first := len(p.mail) == 1
	p.mu.Unlock()
	if first {
		one := [8]byte{1}
		unix.Write(p.wakefd, one[:])
	}
}

// readMail handles the relays in the mailbox.
func (p *poller) readMail() {
	var buf [8]byte
	unix.Read(p.wakefd, buf[:]) // reset the counter before taking the mail
	if p.sweepDue.Swap(false) {
		p.sweepKeepalive()
	}
	p.mu.Lock()
	p.pending, p.mail = p.mail, p.pending[:0]
	p.mu.Unlock()
	for i, s := range p.pending {
		p.pending[i] = nil
		why := s.wake.Swap(0)
		if s.ended {
			continue
		}
		if err := s.wakeUp(why); err != nil {
			p.end(s, err)
		}
	}
	p.pending = p.pending[:0]
}

// end unregisters s and gives back its pipes. A joined relay's sockets are
// closed (which takes them out of the epoll set) and its onEnd called; a
// target that ends before a client joined wakes its dialer or dropper,
// which closes it. After end, the loop no longer touches s's sockets: until
// they are closed their events carry a generation that is no longer live.
func (p *poller) end(s *splicer, err error) {
	s.ended = true
	s.release()
	p.mu.Lock()
	p.slots[s.slot] = nil
	p.free = append(p.free, s.slot)
	p.live--
	joined := s.joined
	p.mu.Unlock()
	if joined {
		s.stopClocks()
		closeSocket(s.sides[0].fd)
		closeSocket(s.sides[1].fd)
		s.onEnd(err)
		return
	}
	s.err = err
	close(s.done)
	if s.dialing {
		s.dialing = false
		close(s.dialed)
	}
}

// failAll ends every relay of p with err.
func (p *poller) failAll(err error) {
	p.mu.Lock()
	live := make([]*splicer, 0, p.live)
	for _, s := range p.slots {
		if s != nil {
			live = append(live, s)
		}
	}
	p.mu.Unlock()
	for _, s := range live {
		p.end(s, err)
	}
	p.mu.Lock()
	p.running = false
	p.mu.Unlock()
}
