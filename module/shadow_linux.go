package module

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// shadowSupported: Linux lists a process's sockets in /proc/self/fd.
const shadowSupported = true

// maxRefused bounds the clients one refusal closes, so a flood cannot hold
// the reserve for long.
const maxRefused = 1024

// shadowState is process-wide: the sockets shadow loops run on (never two
// loops on one socket), and the reserve descriptor they share.
var shadowState = struct {
	mu      sync.Mutex
	claimed socketSet
	users   int
	// reserve is a descriptor held back while shadow loops run: closed, it
	// makes room to accept a client the process has no descriptor for, so
	// the client is closed at once instead of waiting in the backlog.
	reserve int
	// reopening: a timer retries opening the reserve, which lost its
	// room to another thread of the process.
	reopening bool
}{claimed: socketSet{}, reserve: -1}

// openSockets lists the inode numbers of this process's sockets.
func openSockets() (socketSet, error) {
	set := socketSet{}
	err := eachSocket(func(_ int, ino uint64) bool {
		set[ino] = true
		return true
	})
	return set, err
}

// eachSocket calls fn with each socket descriptor of this process and its
// inode number until fn returns false.
func eachSocket(fn func(fd int, ino uint64) bool) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		link, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil {
			continue // closed meanwhile
		}
		s, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
		if err != nil {
			continue
		}
		if !fn(fd, ino) {
			break
		}
	}
	return nil
}

// findListener returns a duplicate of the TCP socket listening at addr
// that is neither in skip nor claimed by another shadow loop, or nil.
func findListener(addr netip.AddrPort, skip socketSet) (*shadowListener, error) {
	var (
		found *shadowListener
		ferr  error
	)
	err := eachSocket(func(fd int, ino uint64) bool {
		if skip[ino] || !listensAt(fd, addr) {
			return true
		}
		found, ferr = dupListener(fd, ino, addr)
		return found == nil && ferr == nil
	})
	if err != nil {
		return nil, err
	}
	return found, ferr
}

// dupListener duplicates fd, which listens at addr, and claims its socket.
// The duplicate pins the socket, so it is checked again: the descriptor
// number may have been closed and reused since the directory was read.
func dupListener(fd int, ino uint64, addr netip.AddrPort) (*shadowListener, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if unix.Fstat(dup, &st) != nil || st.Ino != ino || !listensAt(dup, addr) {
		unix.Close(dup)
		return nil, nil
	}
	shadowState.mu.Lock()
	if shadowState.claimed[ino] {
		shadowState.mu.Unlock()
		unix.Close(dup)
		return nil, nil
	}
	shadowState.claimed[ino] = true
	shadowState.users++
	takeReserveLocked()
	shadowState.mu.Unlock()

	// f stays open to wait on: a listener's raw connection cannot.
	f := os.NewFile(uintptr(dup), "vipa listener "+addr.String())
	ln, err := net.FileListener(f) // a duplicate of its own
	if err != nil {
		f.Close()
		releaseSocket(ino)
		return nil, err
	}
	return &shadowListener{Listener: ln, file: f, ino: ino}, nil
}

// listensAt tells whether fd is a stream socket listening at addr (an
// Internet address: a Unix socket's is another type).
func listensAt(fd int, addr netip.AddrPort) bool {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return false
	}
	// A stream socket: TCP, or MPTCP, which Go listens with by default.
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || v != unix.SOCK_STREAM {
		return false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)) == addr
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)) == addr
	}
	return false
}

// releaseSocket gives up a shadow loop's claim on a socket; the last loop
// closes the reserve.
func releaseSocket(ino uint64) {
	shadowState.mu.Lock()
	defer shadowState.mu.Unlock()
	delete(shadowState.claimed, ino)
	shadowState.users--
	if shadowState.users == 0 && shadowState.reserve >= 0 {
		unix.Close(shadowState.reserve)
		shadowState.reserve = -1
	}
}

// refuseQueued closes the clients queued on ln while the process is out of
// descriptors: it frees the reserve, accepts and closes clients until the
// queue is empty (drained) or no descriptor is left, and takes the reserve
// again.
func refuseQueued(ln *shadowListener) (n int, drained bool) {
	sc, ok := ln.Listener.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	shadowState.mu.Lock()
	defer shadowState.mu.Unlock()
	if shadowState.reserve >= 0 {
		unix.Close(shadowState.reserve)
		shadowState.reserve = -1
	}
	_ = rc.Control(func(fd uintptr) {
		for range 2 * maxRefused {
			c, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			switch err {
			case nil:
				unix.Close(c)
				if n++; n == maxRefused {
					return
				}
			case unix.EINTR, unix.ECONNABORTED:
			default:
				drained = err == unix.EAGAIN
				return
			}
		}
	})
	takeReserveLocked()
	return n, drained
}

// takeReserveLocked opens the reserve while shadow loops run. With no
// room (another thread took the descriptor the reserve made room for), a
// timer tries again: without a reserve, a client arriving while the
// process has no descriptor would wait in the backlog.
func takeReserveLocked() {
	if shadowState.users == 0 || shadowState.reserve >= 0 {
		return
	}
	if fd, ok := openReserve(); ok {
		shadowState.reserve = fd
		return
	}
	if !shadowState.reopening {
		shadowState.reopening = true
		retakeReserve(acceptBackoffMin)
	}
}

// retakeReserve tries to open the reserve after d, then again after twice
// as long (up to 100 ms) until it succeeds or no loop runs.
func retakeReserve(d time.Duration) {
	time.AfterFunc(d, func() {
		shadowState.mu.Lock()
		defer shadowState.mu.Unlock()
		if shadowState.users > 0 && shadowState.reserve < 0 {
			fd, ok := openReserve()
			if !ok {
				retakeReserve(min(2*d, 100*time.Millisecond))
				return
			}
			shadowState.reserve = fd
		}
		shadowState.reopening = false
	})
}

// openReserve opens a descriptor that costs nothing to hold.
func openReserve() (int, bool) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	return fd, err == nil
}

// awaitQueued waits until a client is queued on ln (or ln is closed). It
// waits on ln's file: a listener's raw connection cannot wait.
func awaitQueued(ln *shadowListener) error {
	rc, err := ln.file.SyscallConn()
	if err != nil {
		return err
	}
	waited := false
	return rc.Read(func(uintptr) bool {
		done := waited
		waited = true
		return done
	})
}

// acceptTurn waits for a client on ln and accepts it, unless the other
// goroutines woken with it (caddy-l4's accept loop) took it first: then it
// reports the client taken. A client already queued is accepted at once.
// Its accepts are raw, so a lost race is seen; a client it wins becomes a
// net.Conn through a duplicate descriptor.
func acceptTurn(ln *shadowListener) (conn net.Conn, taken bool, err error) {
	rc, err := ln.file.SyscallConn()
	if err != nil {
		return nil, false, err
	}
	fd, woken := -1, false
	var aerr error
	err = rc.Read(func(lfd uintptr) bool {
		if woken {
			// Let caddy-l4's loop, woken by the same client, run first.
			runtime.Gosched()
		}
		for {
			nfd, _, e := unix.Accept4(int(lfd), unix.SOCK_CLOEXEC)
			switch e {
			case nil:
				fd = nfd
				return true
			case unix.EINTR, unix.ECONNABORTED:
				continue
			case unix.EAGAIN:
				if woken {
					taken = true // another loop took the client
					return true
				}
				woken = true
				return false // wait for the next client
			default:
				aerr = os.NewSyscallError("accept4", e)
				return true
			}
		}
	})
	if err == nil {
		err = aerr
	}
	if err != nil || taken {
		return nil, taken, err
	}
	f := os.NewFile(uintptr(fd), "")
	conn, err = net.FileConn(f)
	f.Close()
	return conn, false, err
}
