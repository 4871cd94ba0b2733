package serfsync

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	dialTimeout     = time.Second
	exchangeTimeout = 3 * time.Second
)

var errDropped = errors.New("dropped by fault injection")

// fetcher runs the syncs the core hands out and gives it their ends.
func (a *Agent) fetcher() {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case job := <-a.jobs:
			a.stats.inc("sync_out")
			ans, err := a.exchange(job.peer, job.addr, job.req.encode())
			a.mu.Lock()
			a.core.answered(job, ans, err, time.Now())
			a.mu.Unlock()
			a.kick()
		}
	}
}

// exchange sends one sync request over the state channel and returns the
// decoded answer.
func (a *Agent) exchange(name string, addr netip.AddrPort, req []byte) (syncAnswer, error) {
	if h := a.cfg.hooks; h != nil && h.dropRequest != nil && h.dropRequest(name) {
		return syncAnswer{}, errDropped
	}
	conn, err := a.dial(name, addr)
	if err != nil {
		return syncAnswer{}, err
	}
	defer a.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(exchangeTimeout))
	br := bufio.NewReader(conn)
	nonceC, err := a.keys.clientHello(conn)
	if err != nil {
		return syncAnswer{}, err
	}
	nonceS, err := readServerHello(br)
	if err != nil {
		return syncAnswer{}, err
	}
	s, err := a.keys.clientSession(nonceC, nonceS)
	if err != nil {
		return syncAnswer{}, err
	}
	if err := writeFrame(conn, s.seal(req)); err != nil {
		return syncAnswer{}, err
	}
	frame, err := readFrame(br, maxAnswerFrame)
	if err != nil {
		return syncAnswer{}, err
	}
	p, err := s.open(frame)
	if err != nil {
		a.stats.inc("auth_fail")
		return syncAnswer{}, err
	}
	if h := a.cfg.hooks; h != nil && h.dropAnswer != nil && h.dropAnswer(name) {
		return syncAnswer{}, errDropped
	}
	ans, err := decodeSyncAnswer(p)
	if err != nil {
		a.stats.inc("drop_decode")
	}
	return ans, err
}

// dial opens a stream to a peer's gossip port through the transport, so
// the channel sees the network memberlist sees.
func (a *Agent) dial(name string, addr netip.AddrPort) (net.Conn, error) {
	conn, err := a.mux.NodeAwareTransport.DialAddressTimeout(memberlist.Address{Addr: addr.String(), Name: name}, dialTimeout)
	if err != nil {
		return nil, err
	}
	if !a.track(conn) {
		return nil, net.ErrClosed
	}
	return conn, nil
}

// track registers an open stream so Stop can close it; false when stopping.
func (a *Agent) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		_ = c.Close()
		return false
	}
	a.conns[c] = struct{}{}
	return true
}

func (a *Agent) untrack(c net.Conn) {
	_ = c.Close()
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}
