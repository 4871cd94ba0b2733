package relay

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hidden hides the concrete *net.TCPConn, as a TLS or PROXY-protocol
// wrapper would: Dial and Start take the portable path.
type hidden struct{ net.Conn }

func (h hidden) CloseWrite() error { return h.Conn.(*net.TCPConn).CloseWrite() }

// mode is a way through the relay, as the distribute handler takes it:
// Dial and Start for a TCP client (the poller on Linux), or for a client
// the relay cannot see into (the portable copy everywhere).
type mode struct {
	name string
	wrap func(net.Conn) net.Conn
}

var modes = []mode{
	{"start", func(c net.Conn) net.Conn { return c }},
	{"copy", func(c net.Conn) net.Conn { return hidden{c} }},
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(tb testing.TB, ln net.Listener) (dialed, accepted *net.TCPConn) {
	tb.Helper()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	a := <-acc
	if a == nil {
		tb.Fatal("accept failed")
	}
	return d.(*net.TCPConn), a.(*net.TCPConn)
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// rig is client app -- (rc | Dial, Start | target) -- backend.
type rig struct {
	client, backend *net.TCPConn
	rc              *net.TCPConn // the accepted client handed to Start
	toTarget        atomic.Int64
	toClient        atomic.Int64
	done            chan error
}

func newRig(t *testing.T, m mode, prefetched []byte, idle time.Duration) *rig {
	t.Helper()
	ln := listen(t)
	defer ln.Close()
	r := &rig{done: make(chan error, 1)}
	r.client, r.rc = tcpPair(t, ln)
	o := Options{IdleTimeout: idle, ToTarget: &r.toTarget, ToClient: &r.toClient}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client := m.wrap(r.rc)
	tg, err := Dial(client, ln.Addr().(*net.TCPAddr).AddrPort(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	r.backend = b.(*net.TCPConn)
	// The portable copy relays before Start returns.
	go Start(client, tg, prefetched, o, func(err error) { r.done <- err })
	t.Cleanup(func() {
		r.client.Close()
		r.backend.Close()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("the relay did not end")
		}
	})
	return r
}

func (r *rig) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(within):
		t.Fatalf("the relay still runs after %v", within)
		return nil
	}
}

// stream writes n pseudo-random bytes to w and returns their digest.
func stream(w io.Writer, n int, seed uint64) ([32]byte, error) {
	h := sha256.New()
	rng := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, 1+rng.IntN(len(buf)))
		for i := range buf[:k] {
			buf[i] = byte(rng.Uint32())
		}
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		n -= k
	}
	return [32]byte(h.Sum(nil)), nil
}

// drain reads r to EOF and returns the byte count and digest.
func drain(r io.Reader) (int64, [32]byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, [32]byte(h.Sum(nil)), err
}

func TestBulkBothWays(t *testing.T) {
	const size = 6 << 20
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			pre := []byte("prefetched:")
			r := newRig(t, m, pre, 0)
			type res struct {
				n   int64
				sum [32]byte
				err error
			}
			up, down := make(chan res, 1), make(chan res, 1)
			go func() { n, s, err := drain(r.backend); up <- res{n, s, err} }()
			go func() { n, s, err := drain(r.client); down <- res{n, s, err} }()
			var downSum [32]byte
			werr := make(chan error, 2)
			go func() {
				_, err := stream(r.client, size, 1)
				werr <- errors.Join(err, r.client.CloseWrite())
			}()
			go func() {
				s, err := stream(r.backend, size, 2)
				downSum = s
				werr <- errors.Join(err, r.backend.CloseWrite())
			}()
			for range 2 {
				if err := <-werr; err != nil {
					t.Fatal(err)
				}
			}
			// The backend sees the prefetched bytes, then the client's stream.
			h := sha256.New()
			h.Write(pre)
			stream(h, size, 1)
			upSum := [32]byte(h.Sum(nil))
			u, d := <-up, <-down
			if u.err != nil || d.err != nil {
				t.Fatal(u.err, d.err)
			}
			if u.n != size+int64(len(pre)) || u.sum != upSum {
				t.Errorf("to target: %d bytes, digest match %v", u.n, u.sum == upSum)
			}
			if d.n != size || d.sum != downSum {
				t.Errorf("to client: %d bytes, digest match %v", d.n, d.sum == downSum)
			}
			if err := r.wait(t, 5*time.Second); err != nil {
				t.Errorf("relay: %v", err)
			}
			if got := r.toTarget.Load(); got != u.n {
				t.Errorf("ToTarget = %d, want %d", got, u.n)
			}
			if got := r.toClient.Load(); got != d.n {
				t.Errorf("ToClient = %d, want %d", got, d.n)
			}
		})
	}
}

func TestPrefetchedFirst(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRig(t, m, []byte("HELLO "), 0)
			r.client.Write([]byte("world"))
			r.client.CloseWrite()
			got, err := io.ReadAll(r.backend)
			if err != nil || string(got) != "HELLO world" {
				t.Fatalf("backend read %q, %v", got, err)
			}
		})
	}
}

func TestHalfClose(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRig(t, m, nil, 0)
			if _, err := r.client.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			r.client.CloseWrite()
			req, err := io.ReadAll(r.backend) // ends only if the EOF was passed on
			if err != nil || string(req) != "request" {
				t.Fatalf("backend read %q, %v", req, err)
			}
			// The target answers after the client's EOF, in several writes.
			reply := bytes.Repeat([]byte("reply "), 200_000)
			go func() {
				time.Sleep(50 * time.Millisecond)
				for p := reply; len(p) > 0; p = p[min(len(p), 7000):] {
					r.backend.Write(p[:min(len(p), 7000)])
				}
				r.backend.CloseWrite()
			}()
			got, err := io.ReadAll(r.client)
			if err != nil || !bytes.Equal(got, reply) {
				t.Fatalf("client read %d bytes (want %d), %v", len(got), len(reply), err)
			}
			if err := r.wait(t, 5*time.Second); err != nil {
				t.Fatalf("relay: %v", err)
			}
			// The relay closes both sockets itself: the backend reads EOF
			// and the handed client is closed.
			r.backend.SetReadDeadline(time.Now().Add(3 * time.Second))
			if n, err := r.backend.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("backend after the end: %d, %v; want EOF", n, err)
			}
			if _, err := r.rc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("client after the end: %v, want closed", err)
			}
		})
	}
}

// reset makes c's peer see a TCP RST.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

func TestResetEndsRelay(t *testing.T) {
	for _, m := range modes {
		for _, side := range []string{"backend", "client"} {
			t.Run(m.name+"/"+side, func(t *testing.T) {
				r := newRig(t, m, nil, 0)
				// Traffic first, so the relay is in its steady state.
				r.client.Write([]byte("ping"))
				buf := make([]byte, 4)
				io.ReadFull(r.backend, buf)
				start := time.Now()
				peer := r.client
				if side == "backend" {
					reset(r.backend)
				} else {
					reset(r.client)
					peer = r.backend
				}
				err := r.wait(t, 2*time.Second)
				if err == nil {
					t.Error("the relay ended without error after a reset")
				}
				t.Logf("relay ended after %v: %v", time.Since(start), err)
				// Both relay sockets are closed: the other peer sees the end.
				peer.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.ReadAll(peer); err != nil && !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("the other peer after a reset: %v", err)
				}
			})
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 600 * time.Millisecond
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRig(t, m, nil, idle)
			start := time.Now()
			// Alternate directions for a while: the relay must stay up.
			buf := make([]byte, 1)
			var last time.Time
			for i := range 6 {
				time.Sleep(idle / 6)
				from, to := r.client, r.backend
				if i%2 == 1 {
					from, to = r.backend, r.client
				}
				from.Write([]byte{byte(i)})
				if _, err := io.ReadFull(to, buf); err != nil {
					t.Fatalf("round %d after %v: %v", i, time.Since(start), err)
				}
				last = time.Now()
			}
			err := r.wait(t, 4*idle)
			took := time.Since(last)
			if !errors.Is(err, ErrIdleTimeout) {
				t.Fatalf("relay: %v, want ErrIdleTimeout", err)
			}
			if took < idle-idle/10 || took > 3*idle {
				t.Errorf("idle close after %v of silence, want about %v", took, idle)
			}
			if _, err := r.client.Read(buf); err == nil {
				t.Error("client connection still open")
			}
		})
	}
}

// A half-closed connection whose remaining direction stalls must still time out.
func TestIdleTimeoutAfterHalfClose(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRig(t, m, nil, 200*time.Millisecond)
			r.client.CloseWrite()
			if _, err := io.ReadAll(r.backend); err != nil {
				t.Fatal(err)
			}
			if err := r.wait(t, time.Second); !errors.Is(err, ErrIdleTimeout) {
				t.Fatalf("relay: %v, want ErrIdleTimeout", err)
			}
		})
	}
}

// A target that stops reading must not stop the relay from timing out.
func TestIdleTimeoutStalledWriter(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRig(t, m, nil, 200*time.Millisecond)
			go io.Copy(r.client, bytes.NewReader(make([]byte, 64<<20)))
			// A bound on hanging, not a timing: a loaded machine under
			// -race fills the socket buffers slowly.
			if err := r.wait(t, 10*time.Second); !errors.Is(err, ErrIdleTimeout) {
				t.Fatalf("relay: %v, want ErrIdleTimeout", err)
			}
		})
	}
}

// A slow reader keeps the pipe (or buffer) full and the writer waiting.
func TestSlowReader(t *testing.T) {
	const size = 3 << 20
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRig(t, m, nil, 0)
			sum := make(chan [32]byte, 1)
			go func() {
				s, _ := stream(r.client, size, 7)
				r.client.CloseWrite()
				sum <- s
			}()
			h := sha256.New()
			buf := make([]byte, 100<<10)
			var n int64
			for {
				k, err := r.backend.Read(buf)
				h.Write(buf[:k])
				n += int64(k)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			if n != size || [32]byte(h.Sum(nil)) != <-sum {
				t.Fatalf("backend got %d bytes, digest mismatch or short", n)
			}
			r.backend.CloseWrite()
			if err := r.wait(t, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Many relays at once, with echo traffic of random sizes in both directions.
func TestManyConcurrent(t *testing.T) {
	const conns = 64
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			errs := make(chan error, conns)
			for i := range conns {
				r := newRig(t, m, nil, 10*time.Second)
				go func() {
					size := 1 + rand.IntN(256<<10)
					// The backend echoes what it receives.
					go func() {
						io.Copy(struct{ io.Writer }{r.backend}, struct{ io.Reader }{r.backend})
						r.backend.CloseWrite()
					}()
					go func() {
						stream(r.client, size, uint64(i))
						r.client.CloseWrite()
					}()
					n, s, err := drain(r.client)
					h := sha256.New()
					stream(h, size, uint64(i))
					if err == nil && (n != int64(size) || s != [32]byte(h.Sum(nil))) {
						err = errors.New("echo mismatch")
					}
					errs <- errors.Join(err, r.wait(t, 10*time.Second))
				}()
			}
			for range conns {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// Many small exchanges in both directions: a lost wakeup would stall one.
func TestPingPongNoStall(t *testing.T) {
	const conns, rounds = 16, 300
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			errs := make(chan error, conns)
			for i := range conns {
				r := newRig(t, m, nil, 0)
				go func() {
					rng := rand.New(rand.NewPCG(uint64(i), 0))
					buf := make([]byte, 2048)
					for range rounds {
						a, b := r.client, r.backend
						if rng.IntN(2) == 0 {
							a, b = b, a
						}
						n := 1 + rng.IntN(len(buf))
						if _, err := a.Write(buf[:n]); err != nil {
							errs <- err
							return
						}
						b.SetReadDeadline(time.Now().Add(5 * time.Second))
						if _, err := io.ReadFull(b, buf[:n]); err != nil {
							errs <- err
							return
						}
						if rng.IntN(8) == 0 {
							time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
						}
					}
					errs <- nil
				}()
			}
			for range conns {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
