package module

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
)

// reusePortListen listens as Caddy does, with SO_REUSEPORT.
func reusePortListen(t *testing.T, addr string) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestFindListener finds a listening socket by its address among the
// process's descriptors, skips the sockets open before and those another
// shadow loop holds, accepts on the duplicate, and lets the socket go when
// both descriptors are closed.
func TestFindListener(t *testing.T) {
	old := reusePortListen(t, "127.0.0.1:0")
	defer old.Close()
	addr := netip.MustParseAddrPort(old.Addr().String())
	before, err := openSockets()
	if err != nil {
		t.Fatal(err)
	}
	if ln, err := findListener(addr, before); ln != nil || err != nil {
		t.Fatalf("found a socket open before: %v, %v", ln, err)
	}

	// The new config's socket, beside the old one.
	ln := reusePortListen(t, addr.String())
	shadow, err := findListener(addr, before)
	if err != nil || shadow == nil {
		t.Fatalf("findListener: %v, %v", shadow, err)
	}
	defer shadow.Close()
	if again, err := findListener(addr, before); again != nil || err != nil {
		again.Close()
		t.Fatalf("a socket shadowed twice: %v", err)
	}
	if other, _ := findListener(netip.AddrPortFrom(addr.Addr(), addr.Port()+1), nil); other != nil {
		other.Close()
		t.Fatal("found a socket at another port")
	}

	// The shadow accepts on the socket's queue.
	old.Close()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = shadow.Listener.(*net.TCPListener).SetDeadline(time.Now().Add(3 * time.Second))
	s, err := shadow.Accept()
	if err != nil {
		t.Fatalf("accepting on the shadow: %v", err)
	}
	s.Close()

	// Both descriptors closed: the socket is gone, and so its address is
	// free to bind without SO_REUSEPORT.
	ln.Close()
	if free, err := net.Listen("tcp", addr.String()); err == nil {
		free.Close()
		t.Fatal("the shadow did not keep the socket open")
	}
	shadow.Close()
	free, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("the socket outlived both descriptors: %v", err)
	}
	free.Close()
	shadowState.mu.Lock()
	defer shadowState.mu.Unlock()
	if len(shadowState.claimed) != 0 || shadowState.users != 0 || shadowState.reserve != -1 {
		t.Fatalf("shadow state left behind: %+v", shadowState.claimed)
	}
}

// TestRefuseQueued closes every client waiting in the queue, each at once,
// and keeps the reserve.
func TestRefuseQueued(t *testing.T) {
	ln := reusePortListen(t, "127.0.0.1:0")
	defer ln.Close()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	shadow, err := findListener(addr, nil)
	if err != nil || shadow == nil {
		t.Fatalf("findListener: %v, %v", shadow, err)
	}
	defer shadow.Close()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	n, drained := refuseQueued(shadow)
	if n != 3 || !drained {
		t.Fatalf("refused %d, drained %v; want 3, true", n, drained)
	}
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client %d: read %d, %v; want closed", i, n, err)
		}
	}
	shadowState.mu.Lock()
	defer shadowState.mu.Unlock()
	if shadowState.reserve < 0 {
		t.Fatal("the reserve was not taken again")
	}
}

// TestShadowStandsAside: while another loop accepts on the socket, the
// shadow loop leaves it the clients (acceptTurn reports them taken), and
// once that loop is gone the shadow serves every client.
func TestShadowStandsAside(t *testing.T) {
	ln := reusePortListen(t, "127.0.0.1:0")
	addr := netip.MustParseAddrPort(ln.Addr().String())
	shadow, err := findListener(addr, nil)
	if err != nil || shadow == nil {
		t.Fatalf("findListener: %v, %v", shadow, err)
	}
	defer shadow.Close()

	// The other loop, as caddy-l4's: accept and answer.
	other := make(chan struct{})
	go func() {
		defer close(other)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte{'o'})
			c.Close()
		}
	}()
	served := make(chan struct{}, 64)
	loop := &acceptLoop{
		addr: addr, ln: shadow, counters: new(fleet.Counters), logger: zap.NewExample(),
		handle: func(c net.Conn) {
			c.Write([]byte{'s'})
			c.Close()
			served <- struct{}{}
		},
		acceptTurn: func() (net.Conn, bool, error) { return acceptTurn(shadow) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		loop.serve(ctx)
	}()
	defer func() {
		cancel()
		shadow.Close()
		<-done
	}()

	exchange := func() byte {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			t.Fatalf("no answer ): %v", err)
		}
		return b[0]
	}
	for i := range 20 {
		t.Logf("phase 1 client %d: %c", i, exchange())
	}
	// The other loop ends; the socket stays open through the shadow's
	// descriptor, and the shadow takes over.
	ln.Close()
	<-other
	for i := range 20 {
		if got := exchange(); got != 's' {
			t.Fatalf("client %d after the other loop ended: answered by %q, want the shadow", i, got)
		}
	}
}

// TestAwaitQueued: awaitQueued waits for a client and returns once one
// is queued.
func TestAwaitQueued(t *testing.T) {
	ln := reusePortListen(t, "127.0.0.1:0")
	defer ln.Close()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	shadow, err := findListener(addr, nil)
	if err != nil || shadow == nil {
		t.Fatalf("findListener: %v, %v", shadow, err)
	}
	defer shadow.Close()
	done := make(chan error, 1)
	go func() { done <- awaitQueued(shadow) }()
	select {
	case err := <-done:
		t.Fatalf("returned before any client: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no return 10 s after a client queued")
	}
}
