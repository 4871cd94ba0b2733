package relay

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// start hands client and the dialed target to the poller, which relays
// them, closes both and calls ended. See Start.
//
// Like the dial, it runs under caddy-l4's frames on the handler's
// goroutine: its frame stays small and the rarer work (prefetched bytes,
// errors, a context) is in calls of their own.
func (s *splicer) start(client net.Conn, prefetched []byte, o Options, ended func(error)) {
	c, ok := client.(*net.TCPConn)
	if !ok {
		s.joinConn(client, prefetched, &o, ended)
		return
	}
	cfd, err := dupConn(c)
	client.Close() // the relay holds its own descriptor from here
	if err == nil && len(prefetched) > 0 {
		err = s.sendPrefetched(prefetched, o.ToTarget)
	}
	if err != nil {
		s.close()
		if cfd >= 0 {
			unix.Close(cfd)
		}
		ended(err)
		return
	}
	s.sides[0] = side{index: 0, fd: cfd, raw: true, hearIn: true}
	s.closeAll = true
	s.flows[0].count, s.flows[1].count = o.ToTarget, o.ToClient
	s.onEnd = ended
	s.setup(&o)
	if o.Context != nil {
		s.abortOn(o.Context)
	}
	if err := s.p.joinClient(s); err != nil {
		s.stopClocks()
		s.close()
		unix.Close(cfd)
		ended(err)
	}
	// From here the poller may end the relay at any time: s is its own.
}

// joinConn relays a client the poller cannot own (not a TCP socket)
// through a net.Conn of the target.
func (s *splicer) joinConn(client net.Conn, prefetched []byte, o *Options, ended func(error)) {
	conn, err := s.conn()
	if err == nil {
		err = Join(client, conn, prefetched, *o)
		conn.Close()
	}
	client.Close()
	ended(err)
}

// sendPrefetched writes the bytes read while matching to the target before
// the client joins; the poller makes no call on the socket until then. What
// the socket does not take now waits in the flow.
func (s *splicer) sendPrefetched(p []byte, count *atomic.Int64) error {
	n, err := send(s.sides[1].fd, p)
	switch {
	case err == unix.EAGAIN:
		n = 0
	case err != nil:
		return s.sides[1].error("write", err)
	}
	add(count, n)
	if n < len(p) {
		s.flows[0].pre = bytes.Clone(p[n:]) // the caller reuses its buffer
	}
	return nil
}

// abortOn ends the relay once ctx is done.
func (s *splicer) abortOn(ctx context.Context) {
	s.ctx = ctx
	s.stopCtx = context.AfterFunc(ctx, func() { s.p.post(s, wakeAbort) })
}

// dupConn takes a descriptor of its own for c's socket, which shares c's
// non-blocking mode; closing c then leaves the socket open. The caller
// holds c open meanwhile, so the number read under Control stays c's.
func dupConn(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	r, _, e := unix.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, os.NewSyscallError("fcntl", e)
	}
	return int(r), nil
}

// close drops a target that was not joined: the poller ends it, then its
// socket is closed.
func (s *splicer) close() error {
	s.p.post(s, wakeDrop)
	<-s.done
	return unix.Close(s.sides[1].fd)
}

// conn hands the target socket over as a net.Conn, for a client the
// poller cannot relay.
func (s *splicer) conn() (net.Conn, error) {
	s.p.post(s, wakeDrop)
	<-s.done
	f := os.NewFile(uintptr(s.sides[1].fd), "relay-target")
	defer f.Close()
	return net.FileConn(f)
}
