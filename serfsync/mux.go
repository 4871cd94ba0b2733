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
//
// Nothing reaches memberlist before open: memberlist listens before
// serf.Create returns, and serf answers a query (a key query from any
// member) through a memberlist it has not yet been given, a nil pointer.
type muxTransport struct {
	memberlist.NodeAwareTransport

	handle    func(net.Conn) // takes ownership of a channel connection
	pending   pendingStreams
	out       chan net.Conn
	packets   chan *memberlist.Packet
	opened    chan struct{}
	closing   chan struct{} // Shutdown began: packets held for open are dropped
	done      chan struct{}
	openOnce  sync.Once
	closeOnce sync.Once
	once      sync.Once
	wg        sync.WaitGroup
}

// peekTimeout bounds how long a new stream may stay silent before its first
// byte tells whose it is; memberlist's own TCP timeout is 10 s.
const peekTimeout = 10 * time.Second

func newMux(inner memberlist.NodeAwareTransport, handle func(net.Conn)) *muxTransport {
	m := &muxTransport{
		NodeAwareTransport: inner,
		handle:             handle,
		out:                make(chan net.Conn),
		packets:            make(chan *memberlist.Packet),
		opened:             make(chan struct{}),
		closing:            make(chan struct{}),
		done:               make(chan struct{}),
	}
	m.wg.Add(2)
	go m.accept()
	go m.forwardPackets()
	return m
}

// open lets packets and streams through to memberlist: call it once serf
// is created. Until then they wait (UDP in the socket's buffer).
func (m *muxTransport) open() { m.openOnce.Do(func() { close(m.opened) }) }

// StreamCh hands memberlist the streams that are not the channel's.
func (m *muxTransport) StreamCh() <-chan net.Conn { return m.out }

// PacketCh hands memberlist the packets, once open.
func (m *muxTransport) PacketCh() <-chan *memberlist.Packet { return m.packets }

// Shutdown stops the inner transport while still draining its stream and
// packet channels (its readers block on unbuffered sends), then stops
// routing.
func (m *muxTransport) Shutdown() error {
	m.closeOnce.Do(func() { close(m.closing) })
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

// forwardPackets passes packets on once open; before, during a shutdown,
// they are dropped.
func (m *muxTransport) forwardPackets() {
	defer m.wg.Done()
	in := m.NodeAwareTransport.PacketCh()
	for {
		var p *memberlist.Packet
		select {
		case p = <-in:
		case <-m.done:
			return
		}
		select {
		case <-m.opened:
		case <-m.closing:
			continue
		}
		select {
		case m.packets <- p:
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
	case <-m.opened:
	case <-m.closing:
		_ = pc.Close()
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
