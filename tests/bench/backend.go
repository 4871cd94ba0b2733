//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// soReusePort is SO_REUSEPORT on Linux; the syscall package does not name it.
const soReusePort = 0xf

// connLife bounds every backend connection, whatever the client does.
const connLife = 10 * time.Minute

// backends are n SO_REUSEPORT listeners on one address: the kernel spreads
// connections over them, and the listener watch of the distribute contender
// sees n listening sockets on the port (ready = n).
type backends struct {
	addr    string
	lns     []net.Listener
	fails   *failures
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	active  atomic.Int64
	closing atomic.Bool // errors from here on are the bench's own cut, not the proxy's
	wg      sync.WaitGroup
}

func startBackends(ip string, port, n int, fails *failures) (*backends, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		})
		return errors.Join(err, serr)
	}}
	b := &backends{addr: net.JoinHostPort(ip, strconv.Itoa(port)), fails: fails, conns: map[net.Conn]struct{}{}}
	for range n {
		ln, err := lc.Listen(context.Background(), "tcp4", b.addr)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("backend listen %s: %w", b.addr, err)
		}
		b.lns = append(b.lns, ln)
		b.wg.Add(1)
		go b.accept(ln)
	}
	return b, nil
}

func (b *backends) accept(ln net.Listener) {
	defer b.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.active.Add(1)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer b.active.Add(-1)
			defer func() {
				b.mu.Lock()
				delete(b.conns, c)
				b.mu.Unlock()
				c.Close()
			}()
			b.serve(c.(*net.TCPConn))
		}()
	}
}

// close stops the listeners and cuts every connection still open.
func (b *backends) close() {
	b.closing.Store(true)
	for _, ln := range b.lns {
		ln.Close()
	}
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// waitIdle waits until no backend connection is open: the previous
// measurement is over on the backend side too.
func (b *backends) waitIdle(timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for b.active.Load() > 0 {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func (b *backends) serve(c *net.TCPConn) {
	c.SetDeadline(time.Now().Add(connLife))
	var m [msgLen]byte
	if _, err := io.ReadFull(c, m[:1]); err != nil {
		return // a connection that never spoke: nothing to verify
	}
	switch m[0] {
	case modeUpload, modeDownload:
		if _, err := io.ReadFull(c, m[1:hdrLen]); err != nil {
			b.failConn("backend: read bulk header: %v", err)
			return
		}
		d, seed := parseBulkHeader(m[:hdrLen])
		if m[0] == modeUpload {
			b.sink(c, seed)
		} else {
			b.source(c, d, seed)
		}
	case modeExchange:
		if _, err := io.ReadFull(c, m[1:]); err != nil {
			b.failConn("backend: read exchange message: %v", err)
			return
		}
		if _, err := c.Write(m[:]); err != nil {
			return // the client reports the missing echo
		}
		b.expectEOF(c, "exchange")
	case modePing:
		if _, err := io.ReadFull(c, m[1:]); err != nil {
			b.failConn("backend: read ping: %v", err)
			return
		}
		for m[0] == modePing {
			if _, err := c.Write(m[:]); err != nil {
				return
			}
			if _, err := io.ReadFull(c, m[:]); err != nil {
				if err != io.EOF {
					b.failConn("backend: read ping: %v", err)
				}
				return // EOF between messages: the client is done
			}
		}
		b.fails.data("backend: ping message starts with %#x", m[0])
	case modeIdle:
		if _, err := c.Write([]byte{idleReply}); err != nil {
			return
		}
		b.expectEOF(c, "idle")
	default:
		b.fails.data("backend: first byte %#x is no mode", m[0])
	}
}

func (b *backends) failConn(format string, a ...any) {
	if !b.closing.Load() {
		b.fails.conn(format, a...)
	}
}

// expectEOF waits for the client's close; any byte before it is one the
// client never sent.
func (b *backends) expectEOF(c *net.TCPConn, what string) {
	var one [1]byte
	n, err := c.Read(one[:])
	switch {
	case n > 0:
		b.fails.data("backend: %s: unexpected byte %#x after the message", what, one[0])
	case err != nil && err != io.EOF && !errors.Is(err, syscall.ECONNRESET):
		b.failConn("backend: %s: waiting for close: %v", what, err)
	}
}

// sink receives an upload, verifies every byte, and answers with what it got.
func (b *backends) sink(c *net.TCPConn, seed uint64) {
	ck := newChecker(seed)
	buf := make([]byte, chunkLen)
	for {
		n, err := c.Read(buf)
		ck.check(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			b.failConn("backend: upload read after %d bytes: %v", ck.n, err)
			return
		}
	}
	if _, err := c.Write(uploadReply(ck.n, ck.bad)); err != nil {
		b.failConn("backend: upload reply: %v", err)
	}
}

// source streams for d, half-closes, then checks the client's count: only the
// backend knows how many bytes it wrote.
func (b *backends) source(c *net.TCPConn, d time.Duration, seed uint64) {
	s := newSender(seed)
	for start := time.Now(); time.Since(start) < d; {
		n, err := c.Write(s.next())
		s.advance(n)
		if err != nil {
			b.failConn("backend: download write after %d bytes: %v", s.n, err)
			return
		}
	}
	if err := c.CloseWrite(); err != nil {
		b.failConn("backend: download half-close: %v", err)
		return
	}
	var cnt [8]byte
	if _, err := io.ReadFull(c, cnt[:]); err != nil {
		b.failConn("backend: download: no byte count from the client after half-close: %v", err)
		return
	}
	if got := int64(binary.LittleEndian.Uint64(cnt[:])); got != s.n {
		b.fails.data("backend: download: client received %d bytes, backend wrote %d", got, s.n)
	}
}
