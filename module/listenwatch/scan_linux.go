package listenwatch

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// SocketTable reports whether this system's socket table can be read; where
// it cannot, a Watcher finds listeners only by probing.
const SocketTable = true

// procFiles hold the same table as sock_diag, one line per socket of any state.
var procFiles = [...]string{"/proc/net/tcp", "/proc/net/tcp6"}

// scanner reads the socket table with buffers and a netlink socket reused
// from one scan to the next. It is not safe for concurrent use.
type scanner struct {
	diag   *diagConn
	proc   []byte
	sysctl []byte
}

func newScanner() (*scanner, error) {
	return &scanner{diag: newDiagConn()}, nil
}

// scan replaces the contents of s with the host's listening sockets.
func (sc *scanner) scan(s Snapshot) error { return sc.scanTable(s) }

// scanTable replaces the contents of t with the host's sockets in t's state.
// It asks netlink and, if that fails, parses /proc; the next scan tries
// netlink again.
func (sc *scanner) scanTable(t table) error {
	t.reset()
	nlErr := sc.scanNetlinkTable(t)
	if nlErr == nil {
		return nil
	}
	t.reset()
	if err := sc.scanProcTable(t); err != nil {
		return fmt.Errorf("listenwatch: %w; fallback: %w", nlErr, err)
	}
	return nil
}

func (sc *scanner) scanNetlink(s Snapshot) error { return sc.scanNetlinkTable(s) }
func (sc *scanner) scanProc(s Snapshot) error    { return sc.scanProcTable(s) }

func (sc *scanner) scanNetlinkTable(t table) error {
	if err := sc.diag.open(); err != nil {
		return err
	}
	for _, family := range [...]uint8{unix.AF_INET, unix.AF_INET6} {
		if err := sc.diag.dump(family, t); err != nil {
			sc.diag.close()
			return err
		}
	}
	return nil
}

// bindV6Only holds the IPV6_V6ONLY default of new IPv6 sockets.
const bindV6Only = "/proc/sys/net/ipv6/bindv6only"

func (sc *scanner) scanProcTable(t table) error {
	for i, path := range procFiles {
		// /proc/net/tcp6 does not show IPV6_V6ONLY: take the host's
		// default, which an application may have overridden.
		v6only := i == 1 && sc.bindV6Only()
		var err error
		sc.proc, err = readFile(path, sc.proc)
		if errors.Is(err, unix.ENOENT) && i == 1 {
			continue // IPv6 disabled
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := parseProcNetTCP(sc.proc, t, v6only); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// bindV6Only reports net.ipv6.bindv6only, the IPV6_V6ONLY default of new
// IPv6 sockets; unreadable, it is Linux's default, off.
func (sc *scanner) bindV6Only() bool {
	var err error
	sc.sysctl, err = readFile("/proc/sys/net/ipv6/bindv6only", sc.sysctl)
	return err == nil && len(sc.sysctl) > 0 && sc.sysctl[0] == '1'
}

func (sc *scanner) close() { sc.diag.close() }

// readFile reads path into buf, reusing its capacity. /proc files report size
// 0, so it reads until EOF.
func readFile(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf[:0], err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(cap(buf), 64<<10))...)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == unix.EINTR:
		case err != nil:
			return buf, err
		case n == 0:
			return buf, nil
		default:
			buf = buf[:len(buf)+n]
		}
	}
}
