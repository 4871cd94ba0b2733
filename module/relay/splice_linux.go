package relay

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// side is one socket of the relay with its edge-triggered readiness, which
// is set by epoll events and cleared only when a call proves it gone.
type side struct {
	index    int // 0 client, 1 target
	fd       int // a descriptor the relay owns, closed only by the poller
	readable bool
	writable bool
	rdhup    bool // the peer's FIN (or an error) is pending: read to the end
	broken   bool // epoll reported HUP or ERR
	hearIn   bool // input events are registered
}

// Events registered for a side. Output events come only after a write hit
// EAGAIN, so they stay; input events are dropped while the direction out
// of the side waits on its output, or every arriving segment would wake us.
const (
	sideEvents = unix.EPOLLOUT | unix.EPOLLET
	inEvents   = unix.EPOLLIN | unix.EPOLLRDHUP
)

// apply records an epoll event.
func (sd *side) apply(ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		sd.readable = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		sd.writable = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		sd.rdhup = true
	}
	if ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		sd.broken = true
	}
}

// flow is one direction: src copied or spliced to dst.
type flow struct {
	src, dst *side
	pre      []byte // prefetched bytes still to write before any read
	p        *pipe  // borrowed only while bytes are in flight
	inPipe   int
	burst    int  // bytes read since the pipe was taken
	bulk     bool // the last burst was large: splice without trying a copy
	full     bool // a read found no room (or no data) with bytes in the pipe
	eof      bool
	done     bool // EOF passed on to dst
	count    *atomic.Int64
}

// splicer is one relayed TCP connection: a target dialed by dialRaw and,
// once start joins it, its client. The poller's loop runs it, ends it,
// closes its sockets and calls onEnd; nobody waits for it.
type splicer struct {
	p     *poller
	slot  int32
	gen   uint32
	sides [2]side // client, target
	flows [2]flow // client->target, target->client
	idle  idleClock
	timer *time.Timer
	wake  atomic.Uint32 // why the relay is in the mailbox

	// A dialed target waits in its poller for the client: dialed is closed
	// once the handshake is over, done if it ends before a client joined
	// (err tells how); joined (under the poller's mu) lets its events run
	// turns.
	dialed chan struct{}
	done   chan struct{}
	err    error
	joined bool
	// handle is the Target that Dial returns for the splicer.
	handle Target
	// onEnd, set by start, is called by the poller once the relay ended
	// and both its descriptors are closed.
	onEnd func(error)

	// Owned by the poller's loop.
	swept   uint8 // keepalive sweeps seen since the join (under mu)
	queued  bool
	ended   bool
	dialing bool // the handshake is in progress
	moved   bool
}

// Reasons a relay is in its poller's mailbox.
const (
	wakeIdle uint32 = 1 << iota
	wakeDialTimeout
	wakeDrop
)

// setup starts the idle clock. Its timer is the poller's to arm (armIdle):
// setting a timer takes more stack than the handler's goroutine has left.
func (s *splicer) setup(o *Options) {
	if o.IdleTimeout > 0 {
		s.idle.start(o.IdleTimeout)
	}
}

// armIdle sets the idle timer of a relay with an idle timeout, on its first
// turn. A turn comes at once: the client's socket, writable, reports
// EPOLLOUT as it joins the epoll set. The timer firing asks the idle clock,
// which runs from the join, so arming it a turn later changes nothing.
func (s *splicer) armIdle() {
	if s.timer == nil && s.idle.timeout > 0 {
		s.timer = time.AfterFunc(s.idle.timeout, func() { s.p.post(s, wakeIdle) })
	}
}

// stopClocks stops the idle timer.
func (s *splicer) stopClocks() {
	if s.timer != nil {
		s.timer.Stop()
	}
}

// wakeUp handles the relay's mailbox entry: a drop, a dial timeout, or an
// idle timer that fired, which ends the relay only if no byte moved since
// (bytes that arrived as it fired still count: their events were handled
// first).
func (s *splicer) wakeUp(why uint32) error {
	if why&wakeDrop != 0 {
		return errDropped
	}
	if s.dialing {
		if why&wakeDialTimeout != 0 {
			return errDialTimeout
		}
		return nil
	}
	if why&wakeIdle != 0 {
		if s.timer == nil {
			return nil
		}
		d := s.idle.remaining()
		if d <= 0 {
			return ErrIdleTimeout
		}
		s.timer.Reset(d)
	}
	return nil
}

// event is the epoll registration of a side, with input events.
func (s *splicer) event(i int) unix.EpollEvent {
	return unix.EpollEvent{Events: sideEvents | inEvents, Fd: s.slot, Pad: int32(s.gen<<1) | int32(i)}
}

// finished reports whether both directions are done.
func (s *splicer) finished() bool { return s.flows[0].done && s.flows[1].done }

// release gives back or discards the pipes.
func (s *splicer) release() {
	for i := range s.flows {
		f := &s.flows[i]
		if f.p == nil {
			continue
		}
		if f.inPipe == 0 {
			pipes.put(f.p)
		} else {
			pipes.discard(f.p)
		}
		f.p = nil
	}
}
