//go:build linux

package vipaif

import (
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// announcer repeats a VIPA's announcement in the background.
type announcer struct {
	stop chan struct{}
	done chan struct{}
}

// halt stops the repeats and waits for the socket to close.
func (a *announcer) halt() {
	close(a.stop)
	<-a.done
}

// sender sends one announcement of a VIPA.
type sender interface {
	send() error
	Close() error
}

// announce sends vipa's announcement now and starts the repeats. A link
// without hardware addresses (loopback, a tunnel) has no neighbours to
// tell: nothing is sent and the announcer is nil.
func announce(ifi *net.Interface, vipa netip.Addr) (*announcer, error) {
	if len(ifi.HardwareAddr) == 0 || ifi.Flags&net.FlagLoopback != 0 {
		return nil, nil
	}
	var s sender
	var err error
	if vipa.Is4() {
		s, err = newGARP(ifi, vipa)
	} else {
		s, err = newNA(ifi, vipa)
	}
	if err != nil {
		return nil, err
	}
	if err := s.send(); err != nil {
		s.Close()
		return nil, err
	}
	a := &announcer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		defer s.Close()
		t := time.NewTicker(Interval)
		defer t.Stop()
		for range Announcements - 1 {
			select {
			case <-a.stop:
				return
			case <-t.C:
				_ = s.send() // the first one went out; a later loss is the repeats' reason to exist
			}
		}
	}()
	return a, nil
}

// garp sends gratuitous ARP requests: sender and target are the VIPA, to
// the broadcast address, so every neighbour holding an entry for the VIPA
// updates it to this interface's MAC.
type garp struct {
	c   *arp.Client
	pkt *arp.Packet
}

func newGARP(ifi *net.Interface, vipa netip.Addr) (*garp, error) {
	pkt, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, vipa, ethernet.Broadcast, vipa)
	if err != nil {
		return nil, err
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, err
	}
	return &garp{c: c, pkt: pkt}, nil
}

func (g *garp) send() error  { return g.c.WriteTo(g.pkt, ethernet.Broadcast) }
func (g *garp) Close() error { return g.c.Close() }

// na sends unsolicited neighbour advertisements (override set) from the
// VIPA to all nodes.
type na struct {
	c   *ndp.Conn
	msg *ndp.NeighborAdvertisement
}

func newNA(ifi *net.Interface, vipa netip.Addr) (*na, error) {
	c, _, err := ndp.Listen(ifi, ndp.Addr(vipa.String()))
	if err != nil {
		return nil, err
	}
	msg := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: vipa,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
	}
	return &na{c: c, msg: msg}, nil
}

func (n *na) send() error  { return n.c.WriteTo(n.msg, nil, netip.IPv6LinkLocalAllNodes()) }
func (n *na) Close() error { return n.c.Close() }
