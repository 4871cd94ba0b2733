//go:build linux

package tests

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// app is a real application instance: it greets each client with its name,
// echoes every byte, and says "bye" once the client closed its write side.
type app struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]bool
}

func startApp(t *testing.T, name string, ln net.Listener) *app {
	t.Helper()
	a := &app{name: name, ln: ln, open: make(map[net.Conn]bool)}
	a.wg.Add(1)
	go a.serve()
	t.Cleanup(a.stop)
	return a
}

func (a *app) serve() {
	defer a.wg.Done()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		a.open[c] = true
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer func() {
				a.mu.Lock()
				delete(a.open, c)
				a.mu.Unlock()
				c.Close()
			}()
			if _, err := io.WriteString(c, "hello from "+a.name+"\n"); err != nil {
				return
			}
			if _, err := io.Copy(c, c); err != nil {
				return
			}
			_, _ = io.WriteString(c, "bye\n")
		}()
	}
}

// stopListening closes the listening socket; served connections go on.
func (a *app) stopListening() { a.ln.Close() }

func (a *app) stop() {
	a.ln.Close()
	a.mu.Lock()
	for c := range a.open {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// dialVIPA connects to addr and reads the app's greeting.
func dialVIPA(t *testing.T, addr string) (*net.TCPConn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading greeting through %s: %v", addr, err)
	}
	name, ok := strings.CutPrefix(strings.TrimSpace(line), "hello from ")
	if !ok {
		t.Fatalf("unexpected greeting %q", line)
	}
	return c.(*net.TCPConn), r, name
}

// echo sends a line and checks it comes back.
func echo(t *testing.T, c net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != msg {
		t.Fatalf("echo: got %q, %v; want %q", got, err, msg)
	}
}
