// Package relay copies bytes between a client connection and the target it
// was routed to, in both directions, preserving TCP half-close.
//
// Dial and Start are the whole of it. On Linux, for a TCP client, Dial
// connects a raw nonblocking socket to the target and Start hands both
// sockets to one of a few process-wide pollers (one per P): each is one
// edge-triggered epoll set, parked on Go's netpoller, and one goroutine that
// exists only while the poller has relays. The target never enters Go's
// netpoller; the client's socket is taken out of it (the relay keeps a
// duplicate descriptor and closes the net.Conn), so the poller alone owns
// the connection and no goroutine waits for it. Small reads are copied
// through the poller's buffer (two calls per message); bursts are spliced
// through a kernel pipe borrowed from a pool only while bytes are in
// flight. An idle relayed connection therefore holds its two sockets and a
// small struct: no pipe, no buffer, no descriptor and no goroutine of its
// own. Since the relay closes both sockets itself, the last FIN comes from
// that close rather than a second shutdown.
//
// Elsewhere (another system, or a client that is not a TCP socket) the
// target is dialed with a net.Dialer and Start copies both directions
// through pooled buffers, one goroutine each, before it returns.
package relay

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrIdleTimeout is how a relay ends when neither direction moved a byte for
// Options.IdleTimeout.
var ErrIdleTimeout = errors.New("relay: idle timeout")

// Options for one relayed connection.
type Options struct {
	// IdleTimeout closes both connections when no byte moved in either
	// direction for this long. 0 means no timeout.
	IdleTimeout time.Duration

	// ToTarget and ToClient are live byte counters (may be nil), updated as
	// bytes move so that an admin API can show them.
	ToTarget *atomic.Int64
	ToClient *atomic.Int64
}

// join sends prefetched to target first, then copies client<->target in both
// directions until both directions have ended, preserving TCP half-close:
// when one side's read returns EOF, the other side's write half is closed and
// the other direction keeps copying. On an error in either direction (reset,
// write error, idle timeout) both connections are closed. join returns when
// both directions are done; it does not close client or target itself on a
// clean finish (the caller closes). It returns the first non-EOF error, if
// any.
func join(client, target net.Conn, prefetched []byte, o Options) error {
	if len(prefetched) > 0 {
		if err := writePrefetched(target, prefetched, o); err != nil {
			client.Close()
			target.Close()
			return err
		}
	}
	return joinCopy(client, target, &o)
}

// Target is a connected target from Dial, to be relayed by Start or
// dropped with Close.
type Target struct {
	conn net.Conn  // a connection dialed the portable way
	raw  rawTarget // a socket outside Go's netpoller, where supported
}

// rawTarget is a target socket owned by a platform's fast path.
type rawTarget interface {
	start(client net.Conn, prefetched []byte, o Options, ended func(error))
	close() error
}

// Dial connects to addr within timeout, for a relay to client. Its error
// is always a dial error: the caller can try another address.
//
// On Linux, when client is a *net.TCPConn, the target is a raw non-blocking
// socket whose handshake is awaited on the relay's pollers: it never
// becomes a net.Conn nor enters Go's netpoller. Like net.Dialer's, it gets
// TCP_NODELAY and keepalive probes (15s idle, 15s interval, 9 probes), the
// probes once it has been relayed for a few seconds. Elsewhere it is
// dialed with a net.Dialer.
func Dial(client net.Conn, addr netip.AddrPort, timeout time.Duration) (*Target, error) {
	if _, ok := client.(*net.TCPConn); ok && rawDial {
		return dialRaw(addr, timeout)
	}
	return dialConn(addr, timeout)
}

// dialConn dials the portable way.
//
//go:noinline
func dialConn(addr netip.AddrPort, timeout time.Duration) (*Target, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	return &Target{conn: conn}, nil
}

// Close drops a target that will not be joined.
func (t *Target) Close() error {
	if t.raw != nil {
		return t.raw.close()
	}
	return t.conn.Close()
}

// Start sends prefetched to t first, then relays client and t in both
// directions, preserving half-close: one side's EOF closes the other
// side's write half and the other direction keeps going; an error in
// either direction (reset, write error, idle timeout) ends both. The relay
// closes both when it ends, also on a clean finish, and then calls ended
// with how it ended (nil, or the first non-EOF error). ended is called
// exactly once and must not block. client must be the connection t was
// dialed for. Knowing the sockets close, the relay leaves the last FIN to
// that close instead of a shutdown (both peers' FINs were read by then, so
// the close sends a FIN after the bytes, not a reset).
//
// With a raw target (Linux, TCP client) Start returns as soon as the relay
// runs: the poller owns both sockets from then on, the client through a
// descriptor of its own (client itself is closed at once), and ended runs
// on the poller's goroutine. No goroutine waits for the connection. For
// other targets Start relays before returning. Either way the caller may
// reuse prefetched once Start returns.
func Start(client net.Conn, t *Target, prefetched []byte, o Options, ended func(error)) {
	if t.raw != nil {
		t.raw.start(client, prefetched, o, ended)
		return
	}
	err := join(client, t.conn, prefetched, o)
	client.Close()
	t.conn.Close()
	ended(err)
}

// writePrefetched hands the bytes read while matching to the target, bounded
// by the idle timeout so a target that never reads cannot stall the caller.
func writePrefetched(target net.Conn, p []byte, o Options) error {
	if o.IdleTimeout > 0 {
		target.SetWriteDeadline(time.Now().Add(o.IdleTimeout))
		defer target.SetWriteDeadline(time.Time{})
	}
	n, err := target.Write(p)
	add(o.ToTarget, n)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrIdleTimeout
	}
	return err
}

// add counts n bytes on c, if c is set.
func add(c *atomic.Int64, n int) {
	if c != nil && n > 0 {
		c.Add(int64(n))
	}
}

// outcome records how a relay ended and closes both connections when it
// ends early, exactly once.
type outcome struct {
	client, target net.Conn
	mu             sync.Mutex
	err            error
	closed         bool
}

// fail ends the relay with err (nil for a clean end that still has to close
// both connections). Only the first call counts: what follows is fallout of
// the close.
func (r *outcome) fail(err error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.err, r.closed = err, true
	r.mu.Unlock()
	r.client.Close()
	r.target.Close()
}

// finish returns the error the relay ended with, if any. Later fail calls
// (a timer firing as the relay ends) no longer close anything:
// the connections are the caller's again.
func (r *outcome) finish() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.err
}
