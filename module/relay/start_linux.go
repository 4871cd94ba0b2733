package relay

import (
	"bytes"
	"context"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// start hands client and the dialed target to the poller, which relays
// them, closes both and calls ended. See Start.
func (s *splicer) start(client net.Conn, prefetched []byte, o Options, ended func(error)) {
	c, ok := client.(*net.TCPConn)
	if !ok {
		conn, err := s.conn()
		if err == nil {
			err = Join(client, conn, prefetched, o)
			conn.Close()
		}
		client.Close()
		ended(err)
		return
	}
	cfd, err := dupConn(c)
	client.Close() // the relay holds its own descriptor from here
	if err != nil {
		s.close()
		ended(err)
		return
	}
	s.sides[0] = side{index: 0, fd: cfd, raw: true, hearIn: true}
	s.ctx, s.closeAll = o.Context, true
	s.flows[0].count, s.flows[1].count = o.ToTarget, o.ToClient
	if len(prefetched) > 0 {
		// The poller makes no call on the socket until the client joins.
		n, err := send(s.sides[1].fd, prefetched)
		switch {
		case err == unix.EAGAIN:
			n = 0
		case err != nil:
			s.close()
			unix.Close(cfd)
			ended(s.sides[1].error("write", err))
			return
		}
		add(o.ToTarget, n)
		if n < len(prefetched) {
			s.flows[0].pre = bytes.Clone(prefetched[n:]) // the caller reuses its buffer
		}
	}
	s.onEnd = ended
	s.setup(&o)
	if o.Context != nil {
		s.stopCtx = context.AfterFunc(o.Context, func() { s.p.post(s, wakeAbort) })
	}
	if err := s.p.joinClient(s); err != nil {
		s.stopClocks()
		s.close()
		unix.Close(cfd)
		ended(err)
	}
	// From here the poller may end the relay at any time: s is its own.
}

// dupConn takes a descriptor of its own for c's socket, which shares c's
// non-blocking mode; closing c then leaves the socket open.
func dupConn(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) {
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
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
