package serfsync

import (
	"container/list"
	"net"
	"sync"
	"sync/atomic"
)

// maxPending bounds the streams on the gossip port that have not yet proven
// anything: still silent, or state channel streams before their first frame
// opens, or memberlist streams until memberlist closes them. A legitimate
// peer leaves this set within a round trip; a flood stays in it.
const maxPending = 256

// pendingStreams holds the unproven streams, oldest first. When full, a new
// stream closes the oldest: a peer that stalls is the one that has waited
// longest, and a real peer's handshake outruns any flood that cannot open
// maxPending streams within a round trip. Refusing the newest instead would
// let a flood that keeps the set full lock every real peer out.
type pendingStreams struct {
	mu   sync.Mutex
	l    list.List // of net.Conn
	shed atomic.Uint64
}

// add registers c; the returned element is for done.
func (p *pendingStreams) add(c net.Conn) *list.Element {
	p.mu.Lock()
	var oldest net.Conn
	if p.l.Len() >= maxPending {
		oldest = p.l.Remove(p.l.Front()).(net.Conn)
	}
	e := p.l.PushBack(c)
	p.mu.Unlock()
	if oldest != nil {
		_ = oldest.Close()
		p.shed.Add(1)
	}
	return e
}

// done takes c off the set: it proved itself, or ended. Twice is harmless.
func (p *pendingStreams) done(e *list.Element) {
	p.mu.Lock()
	p.l.Remove(e)
	p.mu.Unlock()
}

func (p *pendingStreams) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.l.Len()
}
