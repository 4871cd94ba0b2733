//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// greet connects to addr and reads the app's greeting: the connection is
// proxied end to end, and the name says which node's app took it.
func greet(addr string, timeout time.Duration) (net.Conn, string, error) {
	c, err := net.DialTimeout("tcp4", addr, timeout)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	var line []byte
	var b [1]byte
	for len(line) < 64 {
		if _, err := c.Read(b[:]); err != nil {
			c.Close()
			return nil, "", fmt.Errorf("no greeting through %s: %w", addr, err)
		}
		if b[0] == '\n' {
			_ = c.SetDeadline(time.Time{})
			return c, string(line), nil
		}
		line = append(line, b[0])
	}
	c.Close()
	return nil, "", fmt.Errorf("greeting too long through %s", addr)
}

// short is one short connection: greeting, the app closes, the client sees
// the end. It returns the app's name.
func short(addr string, timeout time.Duration) (string, error) {
	c, name, err := greet(addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{modeClose}); err != nil {
		return name, err
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		return name, fmt.Errorf("want the end after close, got %d bytes, %v", n, err)
	}
	return name, nil
}

// hold opens n connections to addr, 16 at a time, each proxied end to end.
// It stops at the first failure and returns what it opened.
func hold(ctx context.Context, addr string, n int, timeout time.Duration) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					return
				}
				c, _, err := greet(addr, timeout)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i+1, err)
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	conns = slices.DeleteFunc(conns, func(c net.Conn) bool { return c == nil })
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return conns, first
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// stream is a connection that moves bytes both ways until stopped and
// checks every echoed byte.
type stream struct {
	node      string
	c         net.Conn
	done      chan struct{}
	stop      atomic.Bool
	moved     atomic.Int64 // bytes echoed and verified
	err       error        // why it ended before stop, valid once done
	endedAt   time.Time
	lastMoved atomic.Int64 // unix nanoseconds of the last verified echo
}

// startStream opens a stream through addr.
func startStream(addr string, timeout time.Duration) (*stream, error) {
	c, name, err := greet(addr, timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{modeEcho}); err != nil {
		c.Close()
		return nil, err
	}
	s := &stream{node: name, c: c, done: make(chan struct{})}
	go s.run()
	return s, nil
}

func (s *stream) run() {
	defer close(s.done)
	defer func() { s.endedAt = time.Now() }()
	out := make([]byte, 4096)
	in := make([]byte, 4096)
	for !s.stop.Load() {
		for i := range out {
			out[i] = byte(rand.Uint32())
		}
		_ = s.c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.c.Write(out); err != nil {
			s.err = err
			return
		}
		if _, err := io.ReadFull(s.c, in); err != nil {
			s.err = err
			return
		}
		if !bytes.Equal(in, out) {
			s.err = errors.New("echo differs")
			return
		}
		s.moved.Add(int64(len(out)))
		s.lastMoved.Store(time.Now().UnixNano())
		time.Sleep(5 * time.Millisecond)
	}
	// A clean end: half-close, the app closes after the echo of the rest.
	_ = s.c.(*net.TCPConn).CloseWrite()
	_ = s.c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := s.c.Read(in); n != 0 || err != io.EOF {
		s.err = fmt.Errorf("after half-close: %d bytes, %v", n, err)
	}
	s.c.Close()
}

// end stops the stream cleanly and returns why it failed, if it did.
func (s *stream) end() error {
	s.stop.Store(true)
	<-s.done
	return s.err
}

// ended reports whether the stream has stopped on its own.
func (s *stream) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// load runs short connections at rate per second until stopped, counting
// what was served by which node and what failed.
type load struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	served map[string]int
	fails  []loadFail
	lat    []time.Duration
}

type loadFail struct {
	at  time.Time
	err error
}

func startLoad(addr string, rate int, timeout time.Duration) *load {
	l := &load{stop: make(chan struct{}), served: map[string]int{}}
	l.wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			l.wg.Go(func() {
				t0 := time.Now()
				name, err := short(addr, timeout)
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil {
					l.fails = append(l.fails, loadFail{t0, err})
					return
				}
				l.served[name]++
				l.lat = append(l.lat, time.Since(t0))
			})
		}
	})
	return l
}

// end stops the load and waits for the connections in flight.
func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

func (l *load) total() (served, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.served {
		served += k
	}
	return served, len(l.fails)
}

// failsAfter counts the failures of connections started after t.
func (l *load) failsAfter(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := 0
	for _, f := range l.fails {
		if f.at.After(t) {
			k++
		}
	}
	return k
}

// failsExcept counts the failures whose error is not err.
func (l *load) failsExcept(err error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := 0
	for _, f := range l.fails {
		if !errors.Is(f.err, err) {
			k++
		}
	}
	return k
}

func (l *load) firstFail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) == 0 {
		return "none"
	}
	return l.fails[0].err.Error()
}

// percentile of the served connections' durations, q in [0,1].
func (l *load) percentile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return percentile(l.lat, q)
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
