// Command l4relay is Caddy with caddy-l4 and one handler, relay, that
// relays every connection to a fixed target with the distribute handler's
// relay: no vipadynamic app, no DPT, no CRT, no metrics. The bench runs it
// beside distribute to measure what caddy-l4 costs per connection (its
// accept loop, connection wrapping, routing, context) apart from the
// plugin's own work.
//
//	layer4 {
//		127.0.0.1:9000 {
//			route {
//				relay 127.0.0.2:9001
//			}
//		}
//	}
package main

import (
	"net/netip"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/mholt/caddy-l4/layer4"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-l4"

	"github.com/caddy-vipa/caddy-vipa/module/relay"
)

func main() {
	caddy.RegisterModule(&Handler{})
	caddycmd.Main()
}

// Handler relays each connection to Target.
type Handler struct {
	Target string `json:"target"`
	addr   netip.AddrPort
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.handlers.relay",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision parses the target.
func (h *Handler) Provision(caddy.Context) error {
	a, err := netip.ParseAddrPort(h.Target)
	h.addr = a
	return err
}

// Handle does what distribute does once it has a target: dial, hand the
// bytes read while matching over, start the relay.
func (h *Handler) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	t, err := relay.Dial(cx.Conn, h.addr, 3*time.Second)
	if err != nil {
		return err
	}
	var pre []byte
	if p := cx.MatchingBytes(); len(p) > 0 {
		n, _ := cx.Read(p)
		pre = p[:n]
	}
	relay.Start(cx.Conn, t, pre, relay.Options{}, func(error) {})
	return nil
}

// UnmarshalCaddyfile reads `relay <ip:port>`.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	h.Target = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ layer4.NextHandler    = (*Handler)(nil)
)
