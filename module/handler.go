package module

import (
	"errors"
	"fmt"
	"io"
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
	"github.com/caddy-vipa/caddy-vipa/module/relay"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func init() {
	caddy.RegisterModule(&Handler{})
}

// Handler is the layer4 distribute handler: for each connection accepted on
// a VIPA port it selects a target from the DPT by the definition's
// distmethod, records the connection in the CRT, dials the target and
// copies bytes both ways until both sides end.
type Handler struct {
	// VIPA is the distributed address whose definition routes the
	// connections. Default: the address the client connected to.
	VIPA string `json:"vipa,omitempty"`

	// DialTimeout bounds each dial of a target. Default: 3s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// MaxAttempts bounds how many unhealthy targets are dialed for one
	// connection once no healthy target with room answered; every healthy
	// target with room is tried first. Default: 3.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// IdleTimeout closes a connection when no byte moved either way for
	// this long. Default: 0, no idle timeout.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// ProxyProtocol, "v1" or "v2", sends the target a PROXY protocol
	// header with the client's address and the VIPA:port before any byte
	// of the client's. Default: none.
	ProxyProtocol string `json:"proxy_protocol,omitempty"`

	proxyVersion byte
	selfOnce     sync.Once // logs errSelf once
	vipa         netip.Addr
	fleet        *fleet.Fleet
	logger       *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.handlers.distribute",
		New: func() caddy.Module { return new(Handler) },
	}
}

const (
	defaultDialTimeout = 3 * time.Second
	defaultMaxAttempts = 3
)

// Provision finds the vipadynamic app; it must be configured.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.VIPA != "" {
		v, err := vipa.ParseVIPA(h.VIPA)
		if err != nil {
			return fmt.Errorf("distribute: %w", err)
		}
		h.vipa = v
	}
	if h.DialTimeout <= 0 {
		h.DialTimeout = caddy.Duration(defaultDialTimeout)
	}
	if h.MaxAttempts <= 0 {
		h.MaxAttempts = defaultMaxAttempts
	}
	if h.ProxyProtocol != "" {
		v, ok := proxyVersions[h.ProxyProtocol]
		if !ok {
			return fmt.Errorf("distribute: proxy_protocol %q: want v1 or v2", h.ProxyProtocol)
		}
		h.proxyVersion = v
	}
	app, err := ctx.AppIfConfigured("vipadynamic")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return errors.New("distribute: no vipadynamic app in this config: the handler routes by its vipadistribute definitions; " +
			"add the global option vipadynamic (JSON: apps.vipadynamic)")
	}
	if err != nil {
		return fmt.Errorf("distribute: %w", err)
	}
	h.fleet = app.(*App).fleet
	return nil
}

// Handle routes one connection. It is terminal: next is never called. On
// Linux it returns as soon as the relay runs: the relay's poller owns the
// connection from then on and ends its CRT entry.
//
// caddy-l4's frames have already grown the goroutine's stack to 4 KiB and
// fill most of it; the dial and the relay's start below must not grow it
// again (a copy of the whole stack per connection). So Handle's frame holds
// only what lives across the dial, and everything else (the lookup, the
// CRT bookkeeping, the prefetched bytes, the PROXY header, the relay's
// start) is in calls of their own, beside the dial rather than above it.
// TestHandlerFitsCaddyL4Stack measures the room caddy-l4 leaves and what
// this path needs.
func (h *Handler) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	local := addrPort(cx.LocalAddr())
	g := h.lookup(cx, local)
	if g == nil {
		return nil
	}
	conn, e, err := h.dial(cx, g, local)
	if err != nil {
		h.dialRefused(cx, local, err)
		return nil
	}
	h.start(cx, conn, e, local)
	return nil
}

// start relays the connection to the dialed target: the bytes caddy-l4
// read while matching go first, after the PROXY header if one is
// configured.
//
//go:noinline
func (h *Handler) start(cx *layer4.Connection, conn *relay.Target, e *tables.Entry, local netip.AddrPort) {
	pre := prefetched(cx)
	if h.proxyVersion != 0 {
		pre = proxyHeader(h.proxyVersion, addrPort(cx.RemoteAddr()), local, pre)
	}
	relay.Start(cx.Conn, conn, pre, relay.Options{
		IdleTimeout: time.Duration(h.IdleTimeout),
		ToTarget:    &e.ToTarget,
		ToClient:    &e.ToClient,
	}, func(err error) { h.ended(e, err) })
}

// lookup returns the DPT group the connection arrived for, or nil when it
// is refused (counted and logged).
//
//go:noinline
func (h *Handler) lookup(cx *layer4.Connection, local netip.AddrPort) *tables.Group {
	vipa, port := h.vipaOf(local), local.Port()
	// A node standing by for the VIPA routes what reaches it from the DPT
	// it holds: the address is local here too (loopback, SO_REUSEPORT
	// listeners of several nodes on one host, or the user's own tooling),
	// and refusing would fail the client.
	if h.fleet.Route(vipa) == nil && !h.fleet.StandsBy(vipa) {
		h.fleet.Counters.NoDefinition.Add(1)
		h.refuse(cx, local, "no VIPADISTRIBUTE definition for this VIPA", nil)
		return nil
	}
	g := h.fleet.DPT.Lookup(vipa, port)
	if g == nil || g.Len() == 0 {
		h.fleet.Counters.NoTarget.Add(1)
		h.refuse(cx, local, "no target has an application listening on this port", nil)
		return nil
	}
	return g
}

// vipaOf is the VIPA a connection to local is for: the configured one, or
// the address it arrived on.
func (h *Handler) vipaOf(local netip.AddrPort) netip.Addr {
	if h.vipa.IsValid() {
		return h.vipa
	}
	return local.Addr()
}

// dialRefused counts and logs a connection no target took.
func (h *Handler) dialRefused(cx *layer4.Connection, local netip.AddrPort, err error) {
	switch {
	case errors.Is(err, errSelf):
		h.fleet.Counters.NoTarget.Add(1)
		h.refuse(cx, local, "the only target is this listener itself", err)
	case errors.Is(err, errFull):
		h.fleet.Counters.MaxConns.Add(1)
		h.refuse(cx, local, "every target is at max_conns", nil)
	case errors.Is(err, errUnhealthy):
		h.fleet.Counters.Unhealthy.Add(1)
		h.refuse(cx, local, "no healthy target, and the unhealthy ones tried did not answer", err)
	default:
		h.fleet.Counters.NoAnswer.Add(1)
		h.refuse(cx, local, "no target answered", err)
	}
}

// place puts the connection on target before it is dialed (claim 12's
// order): a dial in progress shows in the CRT and counts in the row's
// active connections, so the distmethods see it. The first attempt
// inserts the entry; a retry moves it. Either way the entry carries the
// explanation of its target.
//
//go:noinline
func (h *Handler) place(cx *layer4.Connection, e *tables.Entry, target *tables.Target, local netip.AddrPort, c *tables.Candidates, now time.Time) *tables.Entry {
	if e != nil {
		h.fleet.CRT.Move(e, target, c.Why(), c.LastFailed().Node)
		return e
	}
	e = h.fleet.CRT.Acquire()
	e.Client = addrPort(cx.RemoteAddr())
	e.VIPA, e.Port, e.Target = h.vipaOf(local), local.Port(), target
	e.Since = now.UnixNano()
	e.Why = c.Why()
	h.fleet.CRT.Insert(e)
	return e
}

// dialed records that the entry's target answered: its health, and the
// choice committed (the client's affinity).
//
//go:noinline
func (h *Handler) dialed(e *tables.Entry, c *tables.Candidates) {
	if e.Target.Answered() {
		h.healthChanged(e.Target, true)
	}
	c.Commit(e)
}

var (
	// errSelf: the target's address is the one the connection arrived on.
	errSelf = errors.New("the layer4 server listens where the listener watch finds applications " +
		"(the wildcard or the advertise address), so it counts itself as one; listen on the VIPA")
	errFull      = errors.New("every target is at max_conns")
	errUnhealthy = errors.New("only unhealthy targets")
)

// dial tries the group's candidates in the distmethod's order and returns
// the CRT entry of the first that answers: every healthy target with room,
// then at most MaxAttempts unhealthy ones. The entry is in the CRT from the
// first attempt on and follows the retries; it is released when none
// answers. A target at local, the address the connection arrived on, is
// this listener itself: it is skipped, or the connection would come back
// here again and again.
//
// Its frame sits above every dial's: the ranking and the failure's error
// are calls of their own.
func (h *Handler) dial(cx *layer4.Connection, g *tables.Group, local netip.AddrPort) (*relay.Target, *tables.Entry, error) {
	var c tables.Candidates
	now := tables.Now() // the one clock reading of the connection's start
	h.pick(&c, cx, g, now)
	var e *tables.Entry
	var lastErr error
	attempts, unhealthy := 0, 0
	for target := c.Next(); target != nil; target = c.Next() {
		if target.Address == local {
			h.skipSelf(local)
			continue
		}
		if c.Unhealthy() {
			if unhealthy == h.MaxAttempts {
				break
			}
			unhealthy++
		}
		attempts++
		e = h.place(cx, e, target, local, &c, now)
		conn, err := relay.Dial(cx.Conn, target.Address, time.Duration(h.DialTimeout))
		if err == nil {
			h.dialed(e, &c)
			return conn, e, nil
		}
		lastErr = err
		c.DialFailed()
		h.dialFailed(target, err)
	}
	if e != nil {
		h.fleet.CRT.Release(e)
	}
	return nil, nil, noTarget(&c, attempts, unhealthy, lastErr)
}

// pick ranks the group's targets for the connection.
//
//go:noinline
func (h *Handler) pick(c *tables.Candidates, cx *layer4.Connection, g *tables.Group, now time.Time) {
	g.PickTo(c, h.fleet.CRT, addrPort(cx.RemoteAddr()).Addr(), now)
}

// noTarget is why no target took the connection, after attempts dials of
// which unhealthy were to unhealthy targets; lastErr is the last dial's.
//
//go:noinline
func noTarget(c *tables.Candidates, attempts, unhealthy int, lastErr error) error {
	switch {
	case c.AllFull():
		return errFull
	case attempts == 0:
		return errSelf // every target was skipped
	case attempts == unhealthy:
		return fmt.Errorf("%w: %w", errUnhealthy, lastErr)
	}
	return lastErr
}

// skipSelf logs, once, that a target is this listener itself.
func (h *Handler) skipSelf(local netip.AddrPort) {
	h.selfOnce.Do(func() {
		h.logger.Error("a connection arrived on a target's own address; that target is skipped",
			zap.Stringer("address", local), zap.Error(errSelf))
	})
}

// dialFailed counts, scores and logs a target that did not answer.
func (h *Handler) dialFailed(target *tables.Target, err error) {
	h.fleet.Counters.DialFailures.Add(1)
	if target.DialFailed(time.Now(), isTimeout(err)) {
		h.healthChanged(target, false)
	}
	if ce := h.logger.Check(zapcore.WarnLevel, "dialing target failed; trying the next"); ce != nil {
		ce.Write(zap.String("node", target.Node), zap.Stringer("address", target.Address), zap.Error(err))
	}
}

// healthChanged counts and logs a row's health transition, once per
// transition however many clients saw it.
func (h *Handler) healthChanged(target *tables.Target, healthy bool) {
	h.fleet.HealthChanged(h.logger, target, healthy, "dial")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// ended releases the CRT entry of a relay that is over. Every connection's
// end is logged at debug with its bytes and duration; a failure other than
// a peer going away at error.
func (h *Handler) ended(e *tables.Entry, err error) {
	switch {
	case err == nil || isPeerGone(err):
		h.logEnd(zapcore.DebugLevel, "connection ended", e, nil)
	case errors.Is(err, relay.ErrIdleTimeout):
		h.logEnd(zapcore.DebugLevel, "idle timeout: connection closed", e, nil)
	default:
		h.logEnd(zapcore.ErrorLevel, "relay failed", e, err)
	}
	h.fleet.CRT.Remove(e)
	h.fleet.CRT.Release(e)
}

// logEnd logs a connection's CRT entry; the fields are built only when the
// level is enabled.
func (h *Handler) logEnd(lvl zapcore.Level, msg string, e *tables.Entry, err error) {
	if ce := h.logger.Check(lvl, msg); ce != nil {
		ce.Write(zap.Stringer("client", e.Client), zap.Stringer("vipa", netip.AddrPortFrom(e.VIPA, e.Port)),
			zap.String("node", e.Target.Node), zap.Stringer("address", e.Target.Address),
			zap.Int64("bytes_to_target", e.ToTarget.Load()), zap.Int64("bytes_to_client", e.ToClient.Load()),
			zap.Duration("duration", time.Duration(time.Now().UnixNano()-e.Since)), zap.Error(err))
	}
}

// refuse logs why a connection to local gets no target; the layer4 server
// closes it when the handler returns.
func (h *Handler) refuse(cx *layer4.Connection, local netip.AddrPort, why string, err error) {
	if ce := h.logger.Check(zapcore.WarnLevel, "connection refused: "+why); ce != nil {
		ce.Write(zap.Stringer("client", cx.RemoteAddr()), zap.Stringer("vipa", h.vipaOf(local)),
			zap.Uint16("port", local.Port()), zap.Error(err))
	}
}

// prefetched takes the bytes caddy-l4 read while matching, so they reach
// the target first and later reads go straight to the socket.
func prefetched(cx *layer4.Connection) []byte {
	p := cx.MatchingBytes()
	if len(p) == 0 {
		return nil
	}
	n, _ := cx.Read(p) // copies the buffer onto itself and marks it consumed
	return p[:n]
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// isPeerGone tells an ordinary end of a connection from a real failure.
// ENOTCONN: a socket its peer reset after the last read is no longer
// connected, and shutting down its writing half at the other side's FIN
// says so (a client that had its answer and closed).
func isPeerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ENOTCONN)
}

// Interface guards
var (
	_ caddy.Provisioner  = (*Handler)(nil)
	_ layer4.NextHandler = (*Handler)(nil)
)
