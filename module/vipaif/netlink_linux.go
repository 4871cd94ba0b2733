//go:build linux

package vipaif

import (
	"errors"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ifaProto is IFA_PROTO (linux/if_addr.h), which x/sys/unix lacks.
const ifaProto = 11

var (
	errExists = unix.EEXIST
	errGone   = unix.EADDRNOTAVAIL
)

// current is what the kernel holds for one address on one interface.
type current struct {
	present bool
	proto   uint8
	bits    int
}

// findAddr reads vipa's entry on the interface, with the protocol mark
// netlink.AddrList does not report.
func findAddr(index int, vipa netip.Addr) (current, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfAddrmsg(family(vipa)))
	var msgs [][]byte
	var err error
	for range 3 { // a dump interrupted by a concurrent change is retried
		if msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR); !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return current{}, err
	}
	for _, m := range msgs {
		msg := nl.DeserializeIfAddrmsg(m)
		if int(msg.Index) != index {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[msg.Len():])
		if err != nil {
			return current{}, err
		}
		var local, address netip.Addr
		var proto uint8
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_LOCAL:
				local, _ = netip.AddrFromSlice(a.Value)
			case unix.IFA_ADDRESS:
				address, _ = netip.AddrFromSlice(a.Value)
			case ifaProto:
				if len(a.Value) > 0 {
					proto = a.Value[0]
				}
			}
		}
		if !local.IsValid() {
			local = address // IPv6 sends only IFA_ADDRESS
		}
		if local.Unmap() == vipa {
			return current{present: true, proto: proto, bits: int(msg.Prefixlen)}, nil
		}
	}
	return current{}, nil
}

// addAddr adds vipa as a host prefix marked with Proto; IPv6 skips
// duplicate address detection, which would fail against the node the VIPA
// moves from.
func addAddr(index int, vipa netip.Addr) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(family(vipa))
	msg.Index = uint32(index)
	msg.Prefixlen = uint8(vipa.BitLen())
	msg.Scope = unix.RT_SCOPE_UNIVERSE
	req.AddData(msg)
	ip := vipa.AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	if vipa.Is6() {
		req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(unix.IFA_F_NODAD)))
	}
	req.AddData(nl.NewRtAttr(ifaProto, nl.Uint8Attr(Proto)))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// delAddr removes vipa/bits from the interface.
func delAddr(index int, vipa netip.Addr, bits int) error {
	req := nl.NewNetlinkRequest(unix.RTM_DELADDR, unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(family(vipa))
	msg.Index = uint32(index)
	msg.Prefixlen = uint8(bits)
	req.AddData(msg)
	ip := vipa.AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func family(vipa netip.Addr) int {
	if vipa.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
