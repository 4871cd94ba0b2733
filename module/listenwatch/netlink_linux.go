package listenwatch

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// diagBufLen exceeds the 32 KiB the kernel puts in one dump datagram, so a
// reply is never truncated in practice; recv checks anyway.
const diagBufLen = 64 << 10

// diagConn is a NETLINK_SOCK_DIAG socket with its buffers, kept open between
// scans and reopened after an error; fd is -1 while closed.
type diagConn struct {
	fd  int
	seq uint32
	req [diagRequestLen]byte
	buf []byte
}

func newDiagConn() *diagConn {
	return &diagConn{fd: -1, buf: make([]byte, diagBufLen)}
}

// open opens the socket unless it is open already.
func (c *diagConn) open() error {
	if c.fd >= 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	// A reply that never comes must not wedge the poller.
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink socket: %w", err)
	}
	// Connected to the kernel (port 0), so plain write works.
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink connect: %w", err)
	}
	c.fd = fd
	return nil
}

// close closes the socket; replies still queued on it go with it.
func (c *diagConn) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// dump adds the TCP sockets of family in t's state to t.
func (c *diagConn) dump(family uint8, t table) error {
	c.seq++
	putDiagRequest(&c.req, family, t.state(), c.seq)
	for {
		_, err := unix.Write(c.fd, c.req[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink send: %w", err)
		}
		break
	}
	for {
		n, err := c.recv()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		if n > len(c.buf) {
			// The rest of this dump is lost; the caller closes and retries.
			c.buf = make([]byte, n)
			return fmt.Errorf("netlink receive: datagram of %d bytes truncated", n)
		}
		done, err := parseDiag(c.buf[:n], c.seq, t)
		if err != nil {
			return fmt.Errorf("netlink sock_diag: %w", err)
		}
		if done {
			return nil
		}
	}
}

// recv reads one datagram. MSG_TRUNC makes the kernel return its full length,
// so truncation is detected; unix.Recvfrom would allocate a source address.
func (c *diagConn) recv() (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(c.fd),
		uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)), unix.MSG_TRUNC, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
