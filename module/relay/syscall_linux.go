package relay

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls a turn makes on non-blocking descriptors are raw: they never
// wait, so telling the scheduler would only invite it to hand the P to
// another thread during a long splice and make the loop wait to get it
// back.

// recv and send move bytes on a socket. They skip the file layer that
// read and write go through; send never raises SIGPIPE.
func recv(fd int, b []byte) (int, error) {
	return rawIO(unix.SYS_RECVFROM, fd, b, 0)
}

func send(fd int, b []byte) (int, error) {
	return rawIO(unix.SYS_SENDTO, fd, b, unix.MSG_NOSIGNAL)
}

// write writes to a pipe.
func write(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(bufPtr(b)), uintptr(len(b)))
		if e == 0 {
			return int(n), nil
		}
		if e != unix.EINTR {
			return 0, e
		}
	}
}

func rawIO(trap uintptr, fd int, b []byte, flags int) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(trap, uintptr(fd), uintptr(bufPtr(b)), uintptr(len(b)), uintptr(flags), 0, 0)
		if e == 0 {
			return int(n), nil
		}
		if e != unix.EINTR {
			return 0, e
		}
	}
}

func bufPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// splice moves up to n bytes without blocking. SPLICE_F_MOVE is only a hint.
func splice(from, to, n int) (int, error) {
	for {
		m, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(from), 0, uintptr(to), 0,
			uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if e == 0 {
			return int(m), nil
		}
		if e != unix.EINTR {
			return 0, e
		}
	}
}

// epollPoll collects ready events without waiting.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e == 0 {
			return int(n), nil
		}
		if e != unix.EINTR {
			return 0, e
		}
	}
}

// epollCtl changes a registration.
func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) syscall.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	return e
}

// shutdownWrite sends a FIN after the bytes already queued.
func shutdownWrite(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
	if e != 0 {
		return e
	}
	return nil
}

// closeSocket closes a socket the relay owns. Without SO_LINGER a close
// never waits (the FIN follows the queued bytes), so it is raw too.
func closeSocket(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}
