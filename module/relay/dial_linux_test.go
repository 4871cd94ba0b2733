package relay

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialTimeout dials a listener whose accept queue is full, so the
// kernel drops the SYN and the handshake can only time out.
func TestDialTimeout(t *testing.T) {
	ln := listen(t)
	client, peer := tcpPair(t, ln)
	defer client.Close()
	defer peer.Close()
	ln.Close()

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	// Fill the accept queue; nothing accepts.
	var fill []net.Conn
	defer func() {
		for _, c := range fill {
			c.Close()
		}
	}()
	for range 4 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break // the queue is full
		}
		fill = append(fill, c)
	}
	start := time.Now()
	tg, err := Dial(peer, addr, 300*time.Millisecond)
	if err == nil {
		tg.Close()
		t.Skip("the kernel completed a handshake past a full accept queue")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dial error %v, want a timeout", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("dial timed out after %v, want about 300ms", d)
	}
}

// TestDialRaw checks that a TCP client gets a raw target, and a target
// that is dropped unjoined leaves no poller entry.
func TestDialRaw(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	client, peer := tcpPair(t, ln)
	defer client.Close()
	defer peer.Close()
	tg, err := Dial(peer, ln.Addr().(*net.TCPAddr).AddrPort(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if tg.raw == nil {
		t.Fatal("a TCP client did not get a raw target")
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
}
