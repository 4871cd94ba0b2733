package serfsync

import (
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// portAccepts connects to addr and reports whether its kernel accepted
// within timeout: nil, a *os.SyscallError (ECONNREFUSED: nothing listens),
// or os.ErrDeadlineExceeded. The kernel decides, not Go's timers: poll
// looks at the socket once more when it wakes, so a handshake that ended
// in time counts even when this process was starved of CPU past the
// timeout (a net.Dialer's deadline can then fire first, and a healthy
// owner would look unreachable).
func portAccepts(addr netip.AddrPort, timeout time.Duration) error {
	ip := addr.Addr().Unmap()
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: ip.As4()}
	if ip.Is6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: ip.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	switch err := unix.Connect(fd, sa); err {
	case nil:
		return nil
	case unix.EINPROGRESS, unix.EINTR:
	default:
		return os.NewSyscallError("connect", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ms := max(int(time.Until(deadline)/time.Millisecond), 0)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll", err)
		}
		if n == 0 {
			return os.ErrDeadlineExceeded
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt", err)
		}
		if soerr != 0 {
			return os.NewSyscallError("connect", syscall.Errno(soerr))
		}
		return nil
	}
}
