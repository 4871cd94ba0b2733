package serfsync

import (
	"container/list"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// muxTransport shares memberlist's TCP port with the state channel: an
// incoming stream whose first byte is channelMagic[0] is ours, every other
// stream (memberlist's message types are small numbers, its label header
// is 244) goes to memberlist untouched. One port to open in a firewall, and
// the channel sees exactly the network memberlist sees, partitions included.
type muxTransport struct {
	memberlist.NodeAwareTransport

	handle  func(net.Conn) // takes ownership of a channel connection
	pending pendingStreams
	out     chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// peekTimeout bounds how long a new stream may stay silent before its first
// byte tells whose it is; memberlist's own TCP timeout is 10 s.
const peekTimeout = 10 * time.Second

func newMux(inner memberlist.NodeAwareTransport, handle func(net.Conn)) *muxTransport {
	m := &muxTransport{
		NodeAwareTransport: inner,
		handle:             handle,
		out:                make(chan net.Conn),
		done:               make(chan struct{}),
	}
	m.wg.Add(1)
	go m.accept()
	return m
}

// StreamCh hands memberlist the streams that are not the channel's.
func (m *muxTransport) StreamCh() <-chan net.Conn { return m.out }

// Shutdown stops the inner transport while still draining its stream
// channel (its listener blocks on an unbuffered send), then stops routing.
func (m *muxTransport) Shutdown() error {
	err := m.NodeAwareTransport.Shutdown()
	m.once.Do(func() { close(m.done) })
	m.wg.Wait()
	return err
}

func (m *muxTransport) accept() {
	defer m.wg.Done()
	for {
		select {
		case c := <-m.NodeAwareTransport.StreamCh():
			m.wg.Add(1)
			go m.route(c)
		case <-m.done:
			return
		}
	}
}

// route reads one byte, in its own goroutine so a silent peer delays no
// one. The stream counts as pending until the channel's server calls
// proven or the stream is closed.
func (m *muxTransport) route(c net.Conn) {
	defer m.wg.Done()
	pc := &peekedConn{Conn: c, pending: &m.pending}
	pc.elem = m.pending.add(c)
	var first [1]byte
	_ = c.SetReadDeadline(time.Now().Add(peekTimeout))
	if _, err := io.ReadFull(c, first[:]); err != nil {
		_ = pc.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc.first = first[:]
	if first[0] == channelMagic[0] {
		m.handle(pc)
		return
	}
	select {
	case m.out <- pc:
	case <-m.done:
		_ = pc.Close()
	}
}

// peekedConn gives back the bytes read to route a stream, and leaves the
// pending set when closed or proven.
type peekedConn struct {
	net.Conn
	first   []byte
	pending *pendingStreams
	elem    *list.Element
}

// proven takes the stream off the pending set: its peer holds the key.
func (c *peekedConn) proven() { c.pending.done(c.elem) }

func (c *peekedConn) Close() error {
	c.proven()
	return c.Conn.Close()
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
