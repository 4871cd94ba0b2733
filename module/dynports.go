package module

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// A layer4 server cannot listen on "every port a target reports", so for a
// port all definition the app opens the VIPA's ports itself: VIPA:P while
// at least one DPT row has port P, closed (established connections go on)
// when the last one goes. Each connection is served by a distribute
// handler, as a layer4 server's would be. The listeners belong to the
// pooled fleet state, so a reload keeps them.

// MaxDynamicPorts bounds the VIPA ports a routing node opens for its port
// all definitions, together; a quarter of the descriptor limit, when that
// is lower, bounds them too. Ports past the bound stay closed, counted.
const MaxDynamicPorts = 4096

// dynPorts is a fleet's port all listeners.
type dynPorts struct {
	fleet   *fleet.Fleet
	handler atomic.Pointer[Handler]
	limit   int

	mu       sync.Mutex
	defs     map[netip.Addr]*vipa.Definition // the port all definitions this node routes
	reserved map[uint16]bool                 // never opened: gossip, admin
	logger   *zap.Logger
	open     map[netip.AddrPort]*dynListener
	refused  map[netip.AddrPort]bool // over the limit
	failed   map[netip.AddrPort]bool // could not bind, logged once

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

type dynListener struct {
	ln   net.Listener
	done chan struct{}
}

// newDynPorts starts the loop that follows f's DPT.
func newDynPorts(f *fleet.Fleet) *dynPorts {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dynPorts{
		fleet:   f,
		limit:   dynamicLimit(),
		logger:  zap.NewNop(),
		open:    make(map[netip.AddrPort]*dynListener),
		refused: make(map[netip.AddrPort]bool),
		failed:  make(map[netip.AddrPort]bool),
		wake:    make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go d.run(ctx)
	return d
}

// configure installs a config's port all definitions, reserved ports and
// handler, and reconciles at once.
func (d *dynPorts) configure(defs []*vipa.Definition, reserved []uint16, h *Handler, logger *zap.Logger) {
	d.mu.Lock()
	d.defs = make(map[netip.Addr]*vipa.Definition)
	for _, def := range defs {
		if def.All {
			d.defs[def.VIPA] = def
		}
	}
	d.reserved = make(map[uint16]bool, len(reserved))
	for _, p := range reserved {
		d.reserved[p] = true
	}
	d.logger = logger
	d.mu.Unlock()
	d.handler.Store(h)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dynPorts) run(ctx context.Context) {
	defer close(d.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.fleet.DPTChanged():
		case <-d.wake:
		}
		d.reconcile(ctx)
	}
}

// reconcile opens the ports the DPT has rows for and closes the others.
func (d *dynPorts) reconcile(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := make(map[netip.AddrPort]bool)
	if len(d.defs) > 0 {
		for _, r := range d.fleet.DPT.Rows() {
			def := d.defs[r.VIPA]
			if def != nil && def.Ports.Contains(r.Port) && !d.reserved[r.Port] {
				want[netip.AddrPortFrom(r.VIPA, r.Port)] = true
			}
		}
	}
	for ap, l := range d.open {
		if !want[ap] {
			l.ln.Close()
			<-l.done
			delete(d.open, ap)
		}
	}
	for ap := range d.refused {
		if !want[ap] {
			delete(d.refused, ap)
		}
	}
	for ap := range d.failed {
		if !want[ap] {
			delete(d.failed, ap)
		}
	}
	for ap := range want {
		if d.open[ap] != nil || d.failed[ap] {
			continue
		}
		if len(d.open) >= d.limit {
			if !d.refused[ap] {
				d.refused[ap] = true
				d.fleet.Counters.DynamicRefused.Add(1)
				if len(d.refused) == 1 {
					d.logger.Error("port all: a target listens on more ports than this node opens; the others stay closed",
						zap.Int("limit", d.limit), zap.Stringer("refused", ap))
				}
			}
			continue
		}
		if err := d.listen(ctx, ap); err != nil {
			d.failed[ap] = true
			d.fleet.Counters.DynamicFailed.Add(1)
			d.logger.Error("port all: cannot listen on a VIPA port a target reports", zap.Stringer("vipa", ap), zap.Error(err))
		}
	}
	d.fleet.Counters.DynamicOpen.Store(int64(len(d.open)))
}

// listen opens ap and serves it until it is closed.
func (d *dynPorts) listen(ctx context.Context, ap netip.AddrPort) error {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", ap.String())
	if err != nil {
		return err
	}
	l := &dynListener{ln: ln, done: make(chan struct{})}
	d.open[ap] = l
	loop := &acceptLoop{addr: ap, ln: ln, handle: d.handle, counters: &d.fleet.Counters, logger: d.logger}
	go func() {
		defer close(l.done)
		loop.serve(ctx)
	}()
	return nil
}

// handle serves one connection with the distribute handler, as a layer4
// server does: the handler, then close.
func (d *dynPorts) handle(conn net.Conn) {
	defer conn.Close()
	h := d.handler.Load()
	if h == nil {
		return
	}
	buf := prefetchBufs.Get().(*[]byte)
	defer prefetchBufs.Put(buf)
	_ = h.Handle(layer4.WrapConnection(conn, (*buf)[:0], h.logger), nil)
}

// Destruct closes every listener when the last config lets go of them.
func (d *dynPorts) Destruct() error {
	d.cancel()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	for ap, l := range d.open {
		l.ln.Close()
		<-l.done
		delete(d.open, ap)
	}
	d.fleet.Counters.DynamicOpen.Store(0)
	return nil
}

var _ caddy.Destructor = (*dynPorts)(nil)
