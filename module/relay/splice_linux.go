package relay

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// side is one socket of the relay with its edge-triggered readiness, which
// is set by epoll events and cleared only on EAGAIN.
type side struct {
	index    int // 0 client, 1 target
	rc       syscall.RawConn
	fd       int // valid inside a turn, while the descriptor is held
	readable bool
	writable bool
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

// flow is one direction: src spliced into a borrowed pipe, then into dst.
type flow struct {
	src, dst *side
	p        *pipe // borrowed only while bytes are in flight
	inPipe   int
	full     bool // a read found no room (or no data) with bytes in the pipe
	eof      bool
	done     bool // EOF passed on to dst
	count    *atomic.Int64
}

// splicer relays two TCP sockets on the caller's goroutine: a per-connection
// epoll set watches both sockets, and is itself parked on Go's netpoller, so
// no extra goroutine waits while the connection is idle.
type splicer struct {
	outcome
	sides   [2]side // client, target
	flows   [2]flow // client->target, target->client
	ep      *os.File
	epfd    int
	eprc    syscall.RawConn
	idle    idleClock
	ctx     context.Context
	aborted atomic.Bool
	events  [2]unix.EpollEvent
	moved   bool
	err     error // how step ended
	turnErr error // how the last turn ended

	// Callbacks built once per connection, so a turn allocates nothing.
	withClient, withTarget func(uintptr)
	stepFn                 func(uintptr) bool
}

// Splices reports whether Join relays client and target in the kernel
// (Linux, both *net.TCPConn) rather than through user-space buffers.
func Splices(client, target net.Conn) bool {
	_, c := client.(*net.TCPConn)
	_, t := target.(*net.TCPConn)
	return c && t
}

// fastRelay prepares a splicer when both ends are TCP sockets.
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
	s := &splicer{outcome: outcome{client: c, target: t}, ctx: o.Context}
	s.idle.timeout = o.IdleTimeout
	s.flows[0] = flow{src: &s.sides[0], dst: &s.sides[1], count: o.ToTarget}
	s.flows[1] = flow{src: &s.sides[1], dst: &s.sides[0], count: o.ToClient}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	for i, conn := range []*net.TCPConn{c, t} {
		rc, err := conn.SyscallConn()
		if err != nil {
			unix.Close(epfd)
			return nil, err
		}
		s.sides[i] = side{index: i, rc: rc, readable: true, writable: true, hearIn: true}
		ev := unix.EpollEvent{Events: sideEvents | inEvents, Fd: int32(i)}
		var cerr error
		if err := rc.Control(func(fd uintptr) { cerr = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) }); err != nil {
			cerr = err
		}
		if cerr != nil {
			unix.Close(epfd)
			return nil, cerr
		}
	}
	// A non-blocking epoll descriptor is pollable: os.File registers it with
	// the runtime's netpoller, which wakes us when either socket has an event.
	// Deadlines are refused on a file the netpoller did not take.
	s.ep, s.epfd = os.NewFile(uintptr(epfd), "relay-epoll"), epfd
	if err := s.ep.SetReadDeadline(time.Time{}); err != nil {
		s.ep.Close()
		return nil, err
	}
	if s.eprc, err = s.ep.SyscallConn(); err != nil {
		s.ep.Close()
		return nil, err
	}
	s.withClient = func(fd uintptr) {
		s.sides[0].fd = int(fd)
		if err := s.sides[1].rc.Control(s.withTarget); err != nil {
			s.turnErr = err
		}
	}
	s.withTarget = func(fd uintptr) {
		s.sides[1].fd = int(fd)
		s.turnErr = s.pumpAll()
	}
	s.stepFn = s.step
	return s, nil
}

// run relays until both directions are done or one fails. Its frames and
// loop's stay small: they sit under every idle connection's parked stack.
func (s *splicer) run() error {
	if s.idle.timeout > 0 {
		s.idle.start(s.idle.timeout)
		s.ep.SetReadDeadline(time.Now().Add(s.idle.timeout))
	}
	var stop func() bool
	if s.ctx != nil {
		stop = context.AfterFunc(s.ctx, s.abort)
	}
	err := s.loop()
	if stop != nil {
		stop()
	}
	s.release()
	return err
}

// abort wakes the parked loop for good.
func (s *splicer) abort() {
	s.aborted.Store(true)
	s.ep.SetReadDeadline(time.Unix(1, 0))
}

// loop runs the relay inside the epoll file's RawConn.Read, which returns
// early only at the idle deadline or on abort.
func (s *splicer) loop() error {
	for {
		s.err = nil
		err := s.eprc.Read(s.stepFn)
		if err == nil {
			err = s.err // nil: both directions are done
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			if err = s.expired(); err == nil {
				continue
			}
		}
		if err != nil {
			s.fail(err)
		}
		return s.finish()
	}
}

// expired tells what the deadline means: an abort, an idle timeout, or a
// connection that moved bytes since it was set.
func (s *splicer) expired() error {
	if s.aborted.Load() {
		return context.Cause(s.ctx)
	}
	if s.idle.timeout == 0 {
		return s.ep.SetReadDeadline(time.Time{})
	}
	d := s.idle.remaining()
	if d <= 0 {
		// Bytes that arrived as the deadline fired still count.
		if err := s.collect(s.epfd); err != nil {
			return err
		}
		if err := s.turn(); err != nil {
			return err
		}
		if d = s.idle.remaining(); d <= 0 {
			return ErrIdleTimeout
		}
	}
	return s.ep.SetReadDeadline(time.Now().Add(d))
}

// step collects events and moves bytes until nothing can move, then returns
// false to park on the netpoller. Events arriving meanwhile are latched by
// the netpoller (it is not reset between calls), so parking cannot miss
// one. It returns true when the relay ends.
func (s *splicer) step(fd uintptr) bool {
	for {
		if s.err = s.collect(int(fd)); s.err != nil {
			return true
		}
		if s.err = s.turn(); s.err != nil {
			return true
		}
		if s.flows[0].done && s.flows[1].done {
			return true
		}
		if s.aborted.Load() {
			s.err = context.Cause(s.ctx)
			return true
		}
		if !s.busy() {
			return false
		}
	}
}

// collect applies pending epoll events to the sides' readiness, without
// blocking.
func (s *splicer) collect(epfd int) error {
	n, err := unix.EpollWait(epfd, s.events[:], 0)
	for err == unix.EINTR {
		n, err = unix.EpollWait(epfd, s.events[:], 0)
	}
	if err != nil {
		return os.NewSyscallError("epoll_wait", err)
	}
	for _, ev := range s.events[:n] {
		sd := &s.sides[ev.Fd]
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			sd.readable = true
		}
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			sd.writable = true
		}
		if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			sd.broken = true
		}
	}
	return nil
}

// release gives back or discards the pipes and closes the epoll set.
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
	s.ep.Close()
}
