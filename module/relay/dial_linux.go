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

// dialRaw connects a non-blocking socket to addr and waits for the
// handshake on a poller, bounded by timeout. The socket never enters Go's
// netpoller: the poller that saw it connect relays it.
func dialRaw(addr netip.AddrPort, timeout time.Duration) (*Target, bool, error) {
	s, err := dialSocket(addr, timeout)
	if err != nil {
		return nil, true, &net.OpError{Op: "dial", Net: "tcp",
			Addr: net.TCPAddrFromAddrPort(addr), Err: err}
	}
	s.handle.raw = s
	return &s.handle, true, nil
}

func dialSocket(addr netip.AddrPort, timeout time.Duration) (*splicer, error) {
	ip := addr.Addr().Unmap()
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := setupSocket(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	err = connect(fd, ip, addr.Port())
	if err == unix.EINPROGRESS || err == unix.EINTR {
		// Often over already (always on loopback): then no poller wait.
		err = connected(fd)
	}
	switch err {
	case nil, unix.EINPROGRESS:
	default:
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	s := &splicer{done: make(chan struct{}), dialing: err != nil}
	if s.dialing {
		s.dialed = make(chan struct{})
	}
	s.sides[1] = side{index: 1, fd: fd, raw: true, hearIn: true}
	s.flows[0] = flow{src: &s.sides[0], dst: &s.sides[1]}
	s.flows[1] = flow{src: &s.sides[1], dst: &s.sides[0]}
	s.p = pick()
	if err := s.p.registerTarget(s); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if !s.dialing {
		return s, nil
	}
	t := time.AfterFunc(timeout, func() { s.p.post(s, wakeDialTimeout) })
	<-s.dialed
	t.Stop()
	if s.err != nil {
		unix.Close(fd) // the poller ended it: it no longer touches fd
		return nil, s.err
	}
	return s, nil
}

// connected reports how a handshake in progress stands without waiting:
// nil when established, EINPROGRESS while in progress, or its error.
func connected(fd int) error {
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, _, e := unix.RawSyscall(unix.SYS_POLL, uintptr(unsafe.Pointer(&pfd[0])), 1, 0)
	if e != 0 || n == 0 {
		return unix.EINPROGRESS
	}
	if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP) == 0 {
		return nil // writable and no error: established
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		return err
	case v != 0:
		return syscall.Errno(v)
	}
	return nil
}

// setupSocket disables Nagle's algorithm, as net.Dialer does; keepalive
// comes later (see sweepKeepalive).
func setupSocket(fd int) error {
	if err := setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}

// connect starts the handshake without blocking.
func connect(fd int, ip netip.Addr, port uint16) error {
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
func connect6(fd int, ip netip.Addr, port uint16) error {
	sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
	sa.Port = port<<8 | port>>8
	if z := ip.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		}
	}
	return rawConnect(fd, unsafe.Pointer(&sa), unsafe.Sizeof(sa))
}

func rawConnect(fd int, sa unsafe.Pointer, n uintptr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa), n)
	if e != 0 {
		return e
	}
	return nil
}

func setsockoptInt(fd, level, opt, v int) error {
	v32 := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v32)), 4, 0)
	if e != 0 {
		return e
	}
	return nil
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
