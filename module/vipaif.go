package module

import (
	"fmt"
	"net/netip"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
)

// vipaAddresses manages the addresses of the VIPAs this node owns. The
// ownership rule calls Own when this node becomes a VIPA's owner and
// Release when it gives the VIPA up or stops; both are called from one
// goroutine, never concurrently, and may be repeated (Own of an owned VIPA
// re-announces it, Release of a released one does nothing).
type vipaAddresses interface {
	// Own adds vipa to the interface (/32 or /128) and announces the move
	// (gratuitous ARP for IPv4, unsolicited neighbour advertisement for
	// IPv6).
	Own(vipa netip.Addr) error

	// Release removes vipa from the interface.
	Release(vipa netip.Addr) error

	// Quiet stops announcing vipa and keeps its address: a node handing
	// the VIPA over must not move clients back to itself after the
	// successor has announced.
	Quiet(vipa netip.Addr)

	// Forward passes to the previous owner of vipa, at address to on the
	// link, the TCP segments of connections unknown here, during a
	// hand-over; Unforward ends it.
	Forward(vipa, to netip.Addr) error
	Unforward(vipa netip.Addr) error
}

// interfaceAddresses makes the vipaAddresses of vipa_interface name on
// platforms that can manage addresses (set by the platform's file); nil
// elsewhere.
var interfaceAddresses func(name string, logger *zap.Logger) (vipaAddresses, error)

// newVIPAAddresses returns the address manager for vipa_interface: none
// set, the addresses are the user's and nothing is done.
func newVIPAAddresses(iface string, logger *zap.Logger) (vipaAddresses, error) {
	if iface == "" {
		return userAddresses{}, nil
	}
	if interfaceAddresses == nil {
		return nil, fmt.Errorf("vipa_interface %s: managing addresses is not supported on this platform", iface)
	}
	return interfaceAddresses(iface, logger.Named("vipaif"))
}

// userAddresses is vipaAddresses without vipa_interface: the user (or the
// host's configuration) puts the VIPAs' addresses where they belong.
type userAddresses struct{}

func (userAddresses) Own(netip.Addr) error                 { return nil }
func (userAddresses) Release(netip.Addr) error             { return nil }
func (userAddresses) Quiet(netip.Addr)                     {}
func (userAddresses) Forward(netip.Addr, netip.Addr) error { return fleet.ErrNotManaged }
func (userAddresses) Unforward(netip.Addr) error           { return nil }
