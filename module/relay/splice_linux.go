package relay

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// side is one socket of the relay with its edge-triggered readiness, which
// is set by epoll events and cleared only when a call proves it gone.
type side struct {
	index    int // 0 client, 1 target
	rc       syscall.RawConn
	fd       int  // valid inside a turn, while the descriptor is held
	raw      bool // fd is a descriptor the relay owns: always valid
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

// epollCtl changes the side's registration while holding its descriptor,
// so a recycled descriptor number is never touched.
// The event is passed by value: only the net.Conn path lets it escape.
func (sd *side) epollCtl(epfd, op int, ev unix.EpollEvent) error {
	if sd.raw {
		if e := epollCtl(epfd, op, sd.fd, &ev); e != 0 {
			return sd.error("epoll_ctl", e)
		}
		return nil
	}
	return sd.epollCtlConn(epfd, op, ev)
}

func (sd *side) epollCtlConn(epfd, op int, ev unix.EpollEvent) error {
	var e syscall.Errno
	if cerr := sd.rc.Control(func(fd uintptr) { e = epollCtl(epfd, op, int(fd), &ev) }); cerr != nil {
		return sd.error("", cerr)
	}
	if e != 0 {
		return sd.error("epoll_ctl", e)
	}
	return nil
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

// splicer is one relayed TCP connection, run by a poller's loop. Join's
// caller waits for its end; after Start nobody waits: the loop ends it,
// closes its sockets and calls onEnd.
type splicer struct {
	client, target net.Conn
	p              *poller
	slot           int32
	gen            uint32
	sides          [2]side // client, target
	flows          [2]flow // client->target, target->client
	idle           idleClock
	timer          *time.Timer
	ctx            context.Context
	wake           atomic.Uint32 // why the relay is in the mailbox
	done           chan struct{}
	err            error // how the relay ended; read after done

	// A dialed target waits in its poller for the client: dialed is closed
	// once the handshake is over (err tells how), joined (under the
	// poller's mu) lets its events run turns.
	dialed chan struct{}
	joined bool
	// closeAll: the sockets are closed on a clean end too.
	closeAll bool
	// handle is the Target that Dial returns for the splicer.
	handle Target
	// onEnd, set by start, makes the poller own the relay: it closes both
	// raw descriptors when the relay ends and calls onEnd instead of
	// waking a waiting caller.
	onEnd   func(error)
	stopCtx func() bool // stops the context's abort, if any

	// Owned by the poller's loop.
	swept   uint8 // keepalive sweeps seen since the join (under mu)
	queued  bool
	ended   bool
	dialing bool // the handshake is in progress
	moved   bool
	turnErr error

	// Callbacks built once per connection, so a turn allocates nothing.
	withClient, withTarget func(uintptr)
}

// Reasons a relay is in its poller's mailbox.
const (
	wakeIdle uint32 = 1 << iota
	wakeAbort
	wakeDialTimeout
	wakeDrop
)

// Splices reports whether Join relays client and target in the kernel
// (Linux, both *net.TCPConn) rather than through user-space buffers.
func Splices(client, target net.Conn) bool {
	_, c := client.(*net.TCPConn)
	_, t := target.(*net.TCPConn)
	return c && t
}

// fastRelay registers a splicer with a poller when both ends are TCP
// sockets.
func fastRelay(client, target net.Conn, o *Options) runner {
	if !Splices(client, target) {
		return nil
	}
	s, err := newSplicer(client.(*net.TCPConn), target.(*net.TCPConn), o)
	if err != nil {
		return nil // e.g. out of descriptors: the portable copy still works
	}
	return s
}

func newSplicer(c, t *net.TCPConn, o *Options) (*splicer, error) {
	s := &splicer{client: c, target: t, ctx: o.Context, done: make(chan struct{})}
	s.flows[0] = flow{src: &s.sides[0], dst: &s.sides[1], count: o.ToTarget}
	s.flows[1] = flow{src: &s.sides[1], dst: &s.sides[0], count: o.ToClient}
	for i, conn := range []*net.TCPConn{c, t} {
		rc, err := conn.SyscallConn()
		if err != nil {
			return nil, err
		}
		s.sides[i] = side{index: i, rc: rc, hearIn: true}
	}
	s.p = pick()
	s.setup(o)
	if err := s.p.register(s); err != nil {
		if s.timer != nil {
			s.timer.Stop()
		}
		return nil, err
	}
	return s, nil
}

// setup builds the turn's callbacks, unless both descriptors are the
// relay's own, and starts the idle clock.
func (s *splicer) setup(o *Options) {
	if !s.sides[0].raw {
		s.withClient = func(fd uintptr) {
			s.sides[0].fd = int(fd)
			if s.sides[1].raw {
				s.withTarget(uintptr(s.sides[1].fd))
			} else if err := s.sides[1].rc.Control(s.withTarget); err != nil {
				s.turnErr = s.sides[1].error("", err)
			}
		}
		s.withTarget = func(fd uintptr) {
			s.sides[1].fd = int(fd)
			s.turnErr = s.pumpAll()
		}
	}
	if o.IdleTimeout > 0 {
		s.idle.start(o.IdleTimeout)
		s.timer = time.AfterFunc(o.IdleTimeout, func() { s.p.post(s, wakeIdle) })
	}
}

// run waits until the poller ends the relay. Its frame stays small: it sits
// under every idle connection's parked stack.
func (s *splicer) run() error {
	if s.ctx != nil {
		s.stopCtx = context.AfterFunc(s.ctx, func() { s.p.post(s, wakeAbort) })
	}
	<-s.done
	s.stopClocks()
	if s.err != nil || s.closeAll {
		s.client.Close()
		s.target.Close()
	}
	return s.err
}

// stopClocks stops the idle timer and the context's abort.
func (s *splicer) stopClocks() {
	if s.stopCtx != nil {
		s.stopCtx()
	}
	if s.timer != nil {
		s.timer.Stop()
	}
}

// wakeUp handles the relay's mailbox entry: an abort, or an idle timer that
// fired, which ends the relay only if no byte moved since (bytes that
// arrived as it fired still count: their events were handled first).
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
	if why&wakeAbort != 0 {
		return context.Cause(s.ctx)
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

// turn holds both descriptors (so a concurrent Close cannot recycle them)
// and pumps both directions.
func (s *splicer) turn() error {
	if s.sides[0].raw {
		return s.pumpAll() // both descriptors are the relay's own
	}
	s.turnErr = nil
	if err := s.sides[0].rc.Control(s.withClient); err != nil {
		return s.sides[0].error("", err)
	}
	return s.turnErr
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
