package module

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// caddy-l4's server ends its accept loop on the first accept error that is
// not a timeout: one EMFILE would stop a VIPA for good while its socket
// stays open and clients pile up in the backlog. So every layer4 listener
// on a VIPA this node routes gets a shadow accept loop: a second loop on a
// duplicate of the same listening socket, waiting on the same queue, that
// backs off and retries instead of giving up. Both loops serve connections
// alike (the server's own routes); when caddy-l4's ends, the shadow goes on.

const (
	// acceptBackoffMin and acceptBackoffMax bound the pause after a failed
	// accept, doubling in between (as net/http does).
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second

	// shadowRest is how long a shadow loop stands aside after caddy-l4's
	// loop took a client first: while that loop lives, the shadow is woken
	// at most once per rest instead of by every client.
	shadowRest = 100 * time.Millisecond

	// episodeQuiet ends an episode of accept errors: the listener accepted
	// after this long without one. An episode is logged once.
	episodeQuiet = 5 * time.Second

	// shadowFindFor bounds the wait for the layer4 socket: caddy starts the
	// apps of a config one after the other, in no fixed order.
	shadowFindFor = 10 * time.Second
)

// shadows are the shadow accept loops of one config.
type shadows struct {
	vipas  map[netip.Addr]bool
	before socketSet // sockets open before this config started: the running config's
	err    error     // listing them failed: no shadow for this config

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	lns     []*shadowListener
}

// newShadows notes the sockets open before a config starts; it runs in
// Provision, when no app of the new config has bound anything yet.
func newShadows(vipas []netip.Addr) *shadows {
	s := &shadows{vipas: make(map[netip.Addr]bool, len(vipas))}
	for _, v := range vipas {
		s.vipas[v] = true
	}
	if len(vipas) > 0 && shadowSupported {
		s.before, s.err = openSockets()
	}
	return s
}

// start finds the layer4 servers' listeners on this node's VIPAs and runs a
// shadow accept loop on each, once its socket exists.
func (s *shadows) start(ctx caddy.Context, counters *fleet.Counters, logger *zap.Logger) {
	if len(s.vipas) == 0 || !shadowSupported {
		return
	}
	app, err := ctx.AppIfConfigured("layer4")
	if err != nil {
		return // no layer4 app: no VIPA listener
	}
	if s.err != nil {
		logger.Warn("VIPA listeners are not guarded against accept errors", zap.Error(s.err))
		return
	}
	l4 := app.(*layer4.App)
	l4logger := ctx.Logger(l4)
	run, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	repl := caddy.NewReplacer()
	for _, srv := range l4.Servers {
		var h *shadowHandler
		for _, listen := range srv.Listen {
			na, err := caddy.ParseNetworkAddress(repl.ReplaceAll(listen, ""))
			if err != nil || (na.Network != "tcp" && na.Network != "tcp4" && na.Network != "tcp6") {
				continue
			}
			ip, err := netip.ParseAddr(na.Host)
			if err != nil || !s.vipas[ip.Unmap()] {
				continue
			}
			if h == nil {
				// The routes are provisioned; compiled again they behave as
				// the server's own.
				h = &shadowHandler{
					route:  srv.Routes.Compile(l4logger, time.Duration(srv.MatchingTimeout), layer4.HandlerFunc(func(*layer4.Connection) error { return nil })),
					logger: l4logger,
				}
			}
			for p := na.StartPort; p <= na.EndPort; p++ {
				loop := &acceptLoop{
					addr:     netip.AddrPortFrom(ip.Unmap(), uint16(p)),
					handle:   h.handle,
					counters: counters,
					logger:   logger,
				}
				s.wg.Add(1)
				go s.run(run, loop)
			}
		}
	}
}

// run waits for the socket of loop's address, then serves it until stop.
func (s *shadows) run(ctx context.Context, loop *acceptLoop) {
	defer s.wg.Done()
	ln, err := s.find(ctx, loop.addr)
	if err != nil {
		if ctx.Err() == nil {
			loop.logger.Warn("VIPA listener not guarded against accept errors",
				zap.Stringer("vipa", loop.addr), zap.Error(err))
		}
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		ln.Close()
		return
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	loop.ln = ln
	loop.refuse = func() (int, bool) { return refuseQueued(ln) }
	loop.awaitClient = func() error { return awaitQueued(ln) }
	loop.acceptTurn = func() (net.Conn, bool, error) { return acceptTurn(ln) }
	loop.serve(ctx)
}

// find polls for the listening socket at addr that this config's layer4
// app binds: the one that was not open before the config started.
func (s *shadows) find(ctx context.Context, addr netip.AddrPort) (*shadowListener, error) {
	deadline := time.Now().Add(shadowFindFor)
	pause := time.Millisecond
	lastErr := errors.New("no layer4 socket listens there")
	for {
		ln, err := findListener(addr, s.before)
		if ln != nil {
			return ln, nil
		}
		if err != nil {
			lastErr = err // out of descriptors, say: try again
		}
		if time.Now().After(deadline) {
			return nil, lastErr
		}
		if !sleepCtx(ctx, pause) {
			return nil, ctx.Err()
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// stop ends the shadow loops and closes their sockets, so a socket the
// layer4 app closed leaves the kernel's SO_REUSEPORT group at once.
func (s *shadows) stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.stopped = true
	lns := s.lns
	s.lns = nil
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	for _, ln := range lns {
		ln.Close()
	}
	s.wg.Wait()
}

// socketSet holds socket inode numbers.
type socketSet map[uint64]bool

// shadowListener is a shadow loop's duplicate of a layer4 listening socket.
type shadowListener struct {
	net.Listener
	file *os.File // another duplicate, to wait on; nil in tests
	ino  uint64
	once sync.Once
}

// Close closes the duplicates; the socket itself closes when the layer4
// app's descriptor is closed too.
func (l *shadowListener) Close() error {
	if l.file != nil {
		l.file.Close()
	}
	err := l.Listener.Close()
	l.once.Do(func() { releaseSocket(l.ino) })
	return err
}

// acceptLoop accepts on one VIPA listener until it is closed: failed
// accepts are retried after a pause, logged once per episode and counted.
type acceptLoop struct {
	addr     netip.AddrPort
	ln       net.Listener
	handle   func(net.Conn)
	counters *fleet.Counters
	logger   *zap.Logger

	// refuse closes the clients queued on ln while the process has no
	// descriptor left; drained tells whether the queue is now empty.
	refuse func() (n int, drained bool)
	// awaitClient waits until a client is queued on ln.
	awaitClient func() error
	// acceptTurn, when set, accepts instead of ln.Accept: it waits for a
	// client and accepts it, or reports it taken when another loop
	// (caddy-l4's) accepted it first. See serve.
	acceptTurn func() (conn net.Conn, taken bool, err error)
	// wait pauses (tests replace it); false when ctx ended.
	wait func(context.Context, time.Duration) bool

	backoff time.Duration
	ep      episode
}

// episode is a run of failed accepts on one listener.
type episode struct {
	start, last time.Time
	failures    uint64
	refused     uint64
}

func (l *acceptLoop) serve(ctx context.Context) {
	wait := l.wait
	if wait == nil {
		wait = sleepCtx
	}
	for {
		// Both loops wait on the socket and every client wakes both. When
		// caddy-l4's takes the client first, its loop is alive: the shadow
		// stands aside for a while rather than make one wasted accept per
		// client. When that loop has ended, every client is still queued
		// when the shadow looks, and it accepts them all as before.
		var conn net.Conn
		var err error
		if l.acceptTurn != nil {
			var taken bool
			if conn, taken, err = l.acceptTurn(); taken {
				if !sleepCtx(ctx, shadowRest) {
					return
				}
				continue
			}
		} else {
			conn, err = l.ln.Accept()
		}
		if err == nil {
			l.accepted()
			go l.handle(conn)
			continue
		}
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return
		}
		kind := acceptErrorKind(err)
		if kind == "" {
			l.logger.Error("VIPA listener failed; it no longer accepts",
				zap.Stringer("vipa", l.addr), zap.Error(err))
			return
		}
		l.failed(kind, err)
		if kind == "descriptors" && l.refuse != nil {
			n, drained := l.refuse()
			l.counters.NoDescriptors.Add(uint64(n))
			l.ep.refused += uint64(n)
			// With no descriptor free, accept fails before it looks at the
			// queue: wait for the next client here, or Accept would spin.
			if drained && l.awaitClient() == nil {
				continue
			}
		}
		if !wait(ctx, l.nextBackoff()) {
			return
		}
	}
}

// accepted ends the pause and, after a quiet while, the episode.
func (l *acceptLoop) accepted() {
	l.backoff = 0
	if l.ep.start.IsZero() || time.Since(l.ep.last) < episodeQuiet {
		return
	}
	l.logger.Info("VIPA listener accepts again",
		zap.Stringer("vipa", l.addr),
		zap.Duration("after", l.ep.last.Sub(l.ep.start)),
		zap.Uint64("failed_accepts", l.ep.failures),
		zap.Uint64("refused", l.ep.refused))
	l.ep = episode{}
}

// failed counts a failed accept and logs the first of an episode.
func (l *acceptLoop) failed(kind string, err error) {
	now := time.Now()
	if kind == "descriptors" {
		l.counters.AcceptNoDescriptors.Add(1)
	} else {
		l.counters.AcceptOther.Add(1)
	}
	l.ep.failures++
	l.ep.last = now
	if !l.ep.start.IsZero() {
		return
	}
	l.ep.start = now
	if kind == "descriptors" {
		l.logger.Error("VIPA listener out of descriptors: new clients are closed until some are free; "+
			"raise the descriptor limit (LimitNOFILE in Caddy's systemd unit, ulimit -n)",
			zap.Stringer("vipa", l.addr), zap.Error(err))
		return
	}
	l.logger.Error("accepting on a VIPA listener failed; retrying",
		zap.Stringer("vipa", l.addr), zap.Error(err))
}

// nextBackoff doubles the pause from acceptBackoffMin up to acceptBackoffMax.
func (l *acceptLoop) nextBackoff() time.Duration {
	l.backoff = min(max(2*l.backoff, acceptBackoffMin), acceptBackoffMax)
	return l.backoff
}

// acceptErrorKind sorts a failed accept: "descriptors" (EMFILE, ENFILE),
// "other" for what may pass (ENOBUFS, ENOMEM, a timeout...), "" for a
// socket that can no longer accept.
func acceptErrorKind(err error) string {
	switch {
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "descriptors"
	case errors.Is(err, syscall.EBADF), errors.Is(err, syscall.EINVAL),
		errors.Is(err, syscall.ENOTSOCK), errors.Is(err, syscall.EOPNOTSUPP):
		return ""
	}
	return "other"
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// shadowHandler serves a shadow loop's connections as caddy-l4's
// Server.handle does: the server's routes, then close.
type shadowHandler struct {
	route  layer4.Handler
	logger *zap.Logger
}

// prefetchBufs are the connections' matching buffers (caddy-l4 reads 2 KiB
// chunks).
var prefetchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func (h *shadowHandler) handle(conn net.Conn) {
	defer conn.Close()
	buf := prefetchBufs.Get().(*[]byte)
	defer prefetchBufs.Put(buf)
	cx := layer4.WrapConnection(conn, (*buf)[:0], h.logger)
	if ce := h.logger.Check(zapcore.DebugLevel, "started handling connection"); ce != nil {
		ce.Write(zap.String("network", conn.LocalAddr().Network()),
			zap.Stringer("local", conn.LocalAddr()), zap.Stringer("remote", conn.RemoteAddr()))
	}
	start := time.Now()
	if err := h.route.Handle(cx); err != nil {
		h.logger.Error("handling connection", zap.String("network", conn.LocalAddr().Network()),
			zap.Stringer("local", conn.LocalAddr()), zap.Stringer("remote", conn.RemoteAddr()), zap.Error(err))
	}
	if ce := h.logger.Check(zapcore.DebugLevel, "stopped handling connection"); ce != nil {
		ce.Write(zap.String("network", conn.LocalAddr().Network()),
			zap.Stringer("local", conn.LocalAddr()), zap.Stringer("remote", conn.RemoteAddr()),
			zap.Duration("duration", time.Since(start)))
	}
}

// vipasOf lists the VIPAs of definitions.
func vipasOf(defs []*vipa.Definition) []netip.Addr {
	vipas := make([]netip.Addr, 0, len(defs))
	for _, d := range defs {
		vipas = append(vipas, d.VIPA)
	}
	return vipas
}
