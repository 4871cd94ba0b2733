package relay

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
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

// TestDialStartIPv6 runs a connection over IPv6 loopback: the raw dial's
// AF_INET6 path, a refused port, and a relay started on the result.
func TestDialStartIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	dead, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := dead.Addr().(*net.TCPAddr).AddrPort()
	dead.Close()

	app, client := tcpPair(t, ln)
	defer app.Close()
	if _, err := Dial(client, refused, time.Second); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial of a closed IPv6 port: %v, want connection refused", err)
	}
	tg, backend := dialBackend(t, client, ln, time.Second)
	defer backend.Close()
	if tg.raw == nil {
		t.Fatal("an IPv6 client did not get a raw target")
	}
	var toTarget, toClient atomic.Int64
	ended := make(chan error, 1)
	Start(client, tg, nil, Options{ToTarget: &toTarget, ToClient: &toClient}, func(err error) { ended <- err })

	app.Write([]byte("over six"))
	app.CloseWrite()
	if req, err := io.ReadAll(backend); err != nil || string(req) != "over six" {
		t.Fatalf("backend read %q, %v", req, err)
	}
	backend.Write([]byte("and back"))
	backend.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(app); err != nil || string(got) != "and back" {
		t.Fatalf("client read %q, %v", got, err)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("relay ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end")
	}
	if toTarget.Load() != 8 || toClient.Load() != 8 {
		t.Errorf("counted %d to the target and %d to the client, want 8 and 8", toTarget.Load(), toClient.Load())
	}
}
