package fleet

import (
	"errors"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// forwardWindow is how long a node that takes a VIPA over from a live
// previous owner passes that owner the segments of connections it does not
// know (Addresses.Forward): the previous owner gave the VIPA up before this
// node claimed it and keeps its address lingerMax at the latest, so after
// this nothing there would answer them.
const forwardWindow = lingerMax + 500*time.Millisecond

// ErrNotManaged: the VIPAs' addresses are not this node's to manage
// (no vipa_interface), nor is forwarding.
var ErrNotManaged = errors.New("no vipa_interface: addresses not managed")

// startForward begins forwarding v's unknown connections to the member
// that routed it last, if that member is alive, not taken as down, and
// reached on the VIPA's link; d.mu is held. A handshake that member began
// and the client finishes here after its neighbour entry moved then ends
// there, not in this kernel's reset. Without a live previous owner (a
// takeover after a failure) nothing is forwarded: there is no one to end
// it.
func (d *dyn) startForward(v netip.Addr, now time.Time) {
	prev := d.owners[v]
	delete(d.owners, v) // a later claim forwards only to a member seen routing it since
	addr, alive := d.peers[prev]
	if prev == "" || !alive {
		return
	}
	if err := d.addrs.Forward(v, addr); errors.Is(err, ErrNotManaged) {
		return
	} else if err != nil {
		level := zap.DebugLevel
		if !d.forwardWarned {
			d.forwardWarned, level = true, zap.WarnLevel
		}
		if ce := d.f.logger.Check(level, "not forwarding the previous owner's connections during the hand-over: a handshake it began and the client finishes here is reset"); ce != nil {
			ce.Write(zap.Stringer("vipa", v), zap.String("previous_owner", prev), zap.Stringer("address", addr), zap.Error(err))
		}
		return
	}
	d.forward[v] = now.Add(forwardWindow)
	d.f.logger.Info("forwarding segments of connections unknown here to the previous owner during the hand-over",
		zap.Stringer("vipa", v), zap.String("previous_owner", prev), zap.Stringer("address", addr), zap.Duration("for", forwardWindow))
}

// stopForward ends v's forwarding, if any; d.mu is held.
func (d *dyn) stopForward(v netip.Addr) {
	if _, ok := d.forward[v]; !ok {
		return
	}
	delete(d.forward, v)
	if err := d.addrs.Unforward(v); err != nil {
		d.f.logger.Error("removing the hand-over's forwarding", zap.Stringer("vipa", v), zap.Error(err))
	}
}

// endForwards ends the forwardings whose window has passed.
func (d *dyn) endForwards(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for v, until := range d.forward {
		if !now.Before(until) {
			d.stopForward(v)
		}
	}
}

// stopForwards ends every forwarding: the node stops.
func (d *dyn) stopForwards() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for v := range d.forward {
		d.stopForward(v)
	}
}
