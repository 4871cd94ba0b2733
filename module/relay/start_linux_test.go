package relay

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startRig is n connections app -- (client | Start | target) -- backend.
type startRig struct {
	apps, backends []*net.TCPConn
	clients        []*net.TCPConn // the accepted sockets handed to Start
	ended          chan error
	calls          atomic.Int32
}

func newStartRig(t *testing.T, n int, o Options) *startRig {
	t.Helper()
	front, back := listen(t), listen(t)
	defer front.Close()
	defer back.Close()
	r := &startRig{ended: make(chan error, n)}
	t.Cleanup(func() {
		for _, c := range append(r.apps, r.backends...) {
			c.Close()
		}
	})
	for range n {
		app, client := tcpPair(t, front)
		r.apps, r.clients = append(r.apps, app), append(r.clients, client)
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := back.Accept()
			accepted <- c
		}()
		tg, err := Dial(client, back.Addr().(*net.TCPAddr).AddrPort(), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		b := <-accepted
		if b == nil {
			t.Fatal("accept failed")
		}
		r.backends = append(r.backends, b.(*net.TCPConn))
		Start(client, tg, []byte("pre:"), o, func(err error) {
			r.calls.Add(1)
			r.ended <- err
		})
	}
	return r
}

// wait returns the errors of n ended relays.
func (r *startRig) wait(t *testing.T, n int) []error {
	t.Helper()
	var errs []error
	for range n {
		select {
		case err := <-r.ended:
			errs = append(errs, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d relays ended", len(errs), n)
		}
	}
	return errs
}

// TestStartHoldsNoGoroutine: Start returns while its relay runs, the
// poller alone carries it, and ended comes once, after both sockets are
// closed.
func TestStartHoldsNoGoroutine(t *testing.T) {
	const n = 64
	// Every poller has opened its epoll set and eventfd, kept for good.
	warm := newStartRig(t, 2*runtime.GOMAXPROCS(0), Options{})
	for i := range warm.apps {
		warm.apps[i].Close()
		warm.backends[i].Close()
	}
	warm.wait(t, len(warm.apps))
	before, fds := runtime.NumGoroutine(), openFDs(t)
	r := newStartRig(t, n, Options{})
	if g := runtime.NumGoroutine() - before; g >= n/2 {
		t.Fatalf("%d goroutines more for %d running relays", g, n)
	}
	for i, c := range r.clients {
		// Start closed the caller's net.Conn; its socket lives on.
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("relay %d: the handed client is still usable: %v", i, err)
		}
	}
	for i := range n {
		app, backend := r.apps[i], r.backends[i]
		if _, err := app.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 8)
		backend.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadFull(backend, got); err != nil || string(got) != "pre:ping" {
			t.Fatalf("relay %d: backend read %q, %v", i, got, err)
		}
		if _, err := backend.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		app.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadFull(app, got[:4]); err != nil || string(got[:4]) != "pong" {
			t.Fatalf("relay %d: app read %q, %v", i, got[:4], err)
		}
	}
	select {
	case err := <-r.ended:
		t.Fatalf("a relay ended while both peers were open: %v", err)
	default:
	}
	for i := range n {
		r.apps[i].Close()
		r.backends[i].Close()
	}
	for _, err := range r.wait(t, n) {
		if err != nil && !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("ended with %v", err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if c := r.calls.Load(); c != n {
		t.Fatalf("ended called %d times for %d relays", c, n)
	}
	if now := openFDs(t); now > fds {
		t.Fatalf("%d descriptors open after the relays ended, %d before", now, fds)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestStartCleanEndClosesBoth: after both FINs the relay closes both
// sockets itself, so each peer reads EOF, and ended reports no error.
func TestStartCleanEndClosesBoth(t *testing.T) {
	var toTarget, toClient atomic.Int64
	r := newStartRig(t, 1, Options{ToTarget: &toTarget, ToClient: &toClient})
	app, backend := r.apps[0], r.backends[0]
	app.Write([]byte("request"))
	app.CloseWrite()
	backend.SetReadDeadline(time.Now().Add(3 * time.Second))
	if got, err := io.ReadAll(backend); err != nil || string(got) != "pre:request" {
		t.Fatalf("backend read %q, %v", got, err)
	}
	backend.Write([]byte("reply"))
	backend.CloseWrite()
	app.SetReadDeadline(time.Now().Add(3 * time.Second))
	if got, err := io.ReadAll(app); err != nil || string(got) != "reply" {
		t.Fatalf("app read %q, %v", got, err)
	}
	if errs := r.wait(t, 1); errs[0] != nil {
		t.Fatalf("ended with %v", errs[0])
	}
	if toTarget.Load() != int64(len("pre:request")) || toClient.Load() != int64(len("reply")) {
		t.Fatalf("counted %d to the target, %d to the client", toTarget.Load(), toClient.Load())
	}
}

func TestStartIdleTimeout(t *testing.T) {
	r := newStartRig(t, 1, Options{IdleTimeout: 100 * time.Millisecond})
	if errs := r.wait(t, 1); !errors.Is(errs[0], ErrIdleTimeout) {
		t.Fatalf("ended with %v, want the idle timeout", errs[0])
	}
	assertClosed(t, r.apps[0])
	assertClosed(t, r.backends[0])
}

// assertClosed reads c to its end: the relay closed the other side.
func assertClosed(t *testing.T, c *net.TCPConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Fatalf("%v: not closed by the relay: %v", c.LocalAddr(), err)
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestKeepaliveArmedBySweep: a raw target starts without keepalive probes
// and gets them once it has lived through its poller's sweeps.
func TestKeepaliveArmedBySweep(t *testing.T) {
	old := keepaliveSweep.Swap(int64(20 * time.Millisecond))
	defer keepaliveSweep.Store(old)
	r := newStartRig(t, 1, Options{})
	for _, p := range pollers { // sweeps armed by earlier tests wait 5s
		p.mu.Lock()
		if p.sweep != nil {
			p.sweep.Reset(time.Duration(keepaliveSweep.Load()))
		}
		p.mu.Unlock()
	}
	fd := socketTo(t, r.backends[0])
	if on, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE); on != 0 {
		t.Fatal("a fresh target already probes")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		if err != nil {
			t.Fatal(err)
		}
		if on == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no keepalive on a target that lived through the sweeps")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if idle, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); idle != keepIdle {
		t.Fatalf("TCP_KEEPIDLE %d, want %d", idle, keepIdle)
	}
	r.apps[0].Close()
	r.backends[0].Close()
	r.wait(t, 1)
}

// socketTo finds this process's descriptor of the relay socket whose peer
// is c.
func socketTo(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	want := c.LocalAddr().(*net.TCPAddr).AddrPort()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := unix.Getpeername(fd)
		if in4, ok := sa.(*unix.SockaddrInet4); err == nil && ok &&
			netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)) == want {
			return fd
		}
	}
	t.Fatalf("no socket connected to %v", want)
	return -1
}
