package relay

import (
	"bytes"
	"errors"
	"net"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// errNotDialedFor: a raw target is relayed only with the TCP client it was
// dialed for.
var errNotDialedFor = errors.New("relay: the client is not the TCP connection the target was dialed for")

// start hands client and the dialed target to the poller, which relays
// them, closes both and calls ended. See Start.
//
// Like the dial, it runs under caddy-l4's frames on the handler's
// goroutine: its frame stays small and the rarer work (prefetched bytes,
// errors) is in calls of their own.
func (s *splicer) start(client net.Conn, prefetched []byte, o Options, ended func(error)) {
	cfd, err := dupConn(client)
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
	s.sides[0] = side{index: 0, fd: cfd, hearIn: true}
	s.flows[0].count, s.flows[1].count = o.ToTarget, o.ToClient
	s.onEnd = ended
	s.setup(&o)
	if err := s.p.joinClient(s); err != nil {
		s.close()
		unix.Close(cfd)
		ended(err)
	}
	// From here the poller may end the relay at any time: s is its own.
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

// dupConn takes a descriptor of its own for the client's socket, which
// shares its non-blocking mode; closing the client then leaves the socket
// open. The caller holds the client open meanwhile, so the number read
// under Control stays its own.
func dupConn(client net.Conn) (int, error) {
	c, ok := client.(*net.TCPConn)
	if !ok {
		return -1, errNotDialedFor
	}
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
