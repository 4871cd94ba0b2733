package relay

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	// errDialTimeout ends a handshake that outlived the dial timeout.
	errDialTimeout = os.ErrDeadlineExceeded
	// errDropped ends a dialed target that is closed without a relay.
	errDropped = errors.New("relay: target dropped")
)

// rawDial: a TCP client's target is dialed by dialRaw.
const rawDial = true

// dialRaw connects a non-blocking socket to addr and waits for the
// handshake on a poller, bounded by timeout. The socket never enters Go's
// netpoller: the poller that saw it connect relays it.
//
// It runs on the handler's goroutine, whose stack caddy-l4's frames have
// already grown to 4 KiB and nearly filled. So that the dial does not grow
// it again (a copy of the whole stack per connection), its frames are kept
// few and small: the splicer is allocated here, before any deeper call; an
// errno stays an errno until it is reported; and the slow paths (a
// handshake still in progress, errors) are calls of their own.
func dialRaw(addr netip.AddrPort, timeout time.Duration) (*Target, error) {
	s := &splicer{done: make(chan struct{})}
	fd, op, e := openSocket(addr)
	if e != 0 && e != unix.EINPROGRESS {
		return nil, dialErrno(addr, op, e)
	}
	t := &s.sides[1]
	t.index, t.fd, t.hearIn = 1, fd, true
	s.flows[0].src, s.flows[0].dst = &s.sides[0], t
	s.flows[1].src, s.flows[1].dst = t, &s.sides[0]
	s.handle.raw = s
	s.p = pick()
	if e != 0 {
		s.dialing = true
		s.dialed = make(chan struct{})
	}
	err := s.p.registerTarget(s)
	if err != nil {
		unix.Close(fd)
	} else if s.dialing {
		err = s.awaitHandshake(timeout)
	}
	if err != nil {
		return nil, dialError(addr, err)
	}
	return &s.handle, nil
}

//go:noinline
func dialErrno(addr netip.AddrPort, op string, e syscall.Errno) error {
	return dialError(addr, os.NewSyscallError(op, e))
}

//go:noinline
func dialError(addr netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
}

// openSocket creates a non-blocking socket and starts its handshake. It
// returns EINPROGRESS while the handshake is not over; on any other error
// the socket is closed and op names the failed call.
func openSocket(addr netip.AddrPort) (fd int, op string, e syscall.Errno) {
	ip := addr.Addr().Unmap()
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family),
		unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, "socket", e
	}
	fd = int(r)
	// Nagle's algorithm off, as net.Dialer does; keepalive comes later
	// (see sweepKeepalive).
	if e = setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); e != 0 {
		unix.Close(fd)
		return -1, "setsockopt", e
	}
	e = connect(fd, ip, addr.Port())
	if e == unix.EINPROGRESS || e == unix.EINTR {
		// Often over already (always on loopback): then no poller wait.
		e = connected(fd)
	}
	if e != 0 && e != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, "connect", e
	}
	return fd, "", e
}

// awaitHandshake waits for the poller to see the handshake end, bounded by
// timeout. On an error the socket is closed.
//
//go:noinline
func (s *splicer) awaitHandshake(timeout time.Duration) error {
	t := time.AfterFunc(timeout, func() { s.p.post(s, wakeDialTimeout) })
	<-s.dialed
	t.Stop()
	if s.err != nil {
		unix.Close(s.sides[1].fd) // the poller ended it: it no longer touches fd
		return s.err
	}
	return nil
}

// connected reports how a handshake in progress stands without waiting:
// 0 when established, EINPROGRESS while in progress, or its error.
func connected(fd int) syscall.Errno {
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, _, e := unix.RawSyscall(unix.SYS_POLL, uintptr(unsafe.Pointer(&pfd[0])), 1, 0)
	if e != 0 || n == 0 {
		return unix.EINPROGRESS
	}
	if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP) == 0 {
		return 0 // writable and no error: established
	}
	return soError(fd)
}

// soError takes the socket's pending error.
func soError(fd int) syscall.Errno {
	var v int32
	l := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR,
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return syscall.Errno(v)
}

// connect starts the handshake without blocking.
func connect(fd int, ip netip.Addr, port uint16) syscall.Errno {
	if ip.Is4() {
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
		sa.Port = port<<8 | port>>8
		return rawConnect(fd, unsafe.Pointer(&sa), unsafe.Sizeof(sa))
	}
	return connect6(fd, ip, port)
}

// connect6 is apart from connect, whose frame sits on the handler's stack.
//
//go:noinline
func connect6(fd int, ip netip.Addr, port uint16) syscall.Errno {
	sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
	sa.Port = port<<8 | port>>8
	if z := ip.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		}
	}
	return rawConnect(fd, unsafe.Pointer(&sa), unsafe.Sizeof(sa))
}

func rawConnect(fd int, sa unsafe.Pointer, n uintptr) syscall.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa), n)
	return e
}

func setsockoptInt(fd, level, opt, v int) syscall.Errno {
	v32 := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v32)), 4, 0)
	return e
}

// connect ends the handshake of s when its socket reports it over.
func (p *poller) connect(s *splicer) {
	sd := &s.sides[1]
	if !sd.writable && !sd.broken {
		return
	}
	v, err := unix.GetsockoptInt(sd.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err == nil && v == 0:
		s.dialing = false
		close(s.dialed)
	case err == nil && (syscall.Errno(v) == unix.EINPROGRESS || syscall.Errno(v) == unix.EALREADY || syscall.Errno(v) == unix.EINTR):
		// not over yet: the next event tells
	case err == nil:
		p.end(s, os.NewSyscallError("connect", syscall.Errno(v)))
	default:
		p.end(s, os.NewSyscallError("getsockopt", err))
	}
}
