package listenwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Wire sizes from linux/netlink.h and linux/inet_diag.h; x/sys/unix has the
// constants but not the inet_diag structs.
const (
	nlmsgHdrLen    = 16 // struct nlmsghdr
	inetDiagReqLen = 56 // struct inet_diag_req_v2
	inetDiagMsgLen = 72 // struct inet_diag_msg
	diagRequestLen = nlmsgHdrLen + inetDiagReqLen
	rtattrHdrLen   = 4  // struct rtattr: len, type
	inetDiagV6Only = 11 // INET_DIAG_SKV6ONLY: u8, sent for IPv6 sockets in LISTEN or CLOSE state
)

// putDiagRequest encodes a dump request for the TCP sockets of family that are
// in state: the kernel filters by state, so other sockets never cross.
func putDiagRequest(b *[diagRequestLen]byte, family, state uint8, seq uint32) {
	*b = [diagRequestLen]byte{}
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], diagRequestLen)
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 1<<state) // idiag_states
}

// parseDiag adds the sockets in t's state found in one datagram of a dump
// reply to t. Messages with another sequence number are left over from an earlier
// request and skipped. done reports the end of the dump.
func parseDiag(b []byte, seq uint32, t table) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, errors.New("truncated netlink header")
		}
		n := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		mseq := ne.Uint32(b[8:])
		if n < nlmsgHdrLen || n > len(b) {
			return false, fmt.Errorf("bad netlink message length %d", n)
		}
		body := b[nlmsgHdrLen:n]
		b = b[min(nlmsgAlign(n), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE:
			// Since Linux 4.x the DONE payload carries the dump's error.
			if len(body) >= 4 {
				if e := int32(ne.Uint32(body)); e < 0 {
					return true, unix.Errno(-e)
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return false, errors.New("truncated netlink error")
			}
			if e := int32(ne.Uint32(body)); e < 0 {
				return false, unix.Errno(-e)
			}
			return false, errors.New("unexpected netlink ack")
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < inetDiagMsgLen {
				return false, errors.New("truncated inet_diag message")
			}
			if body[1] != t.state() {
				continue
			}
			// inet_diag_sockid: sport, dport (big-endian), src[16], dst[16].
			sport := binary.BigEndian.Uint16(body[4:])
			dport := binary.BigEndian.Uint16(body[6:])
			switch body[0] {
			case unix.AF_INET:
				t.addSocket(netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[8:12])), sport),
					netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[24:28])), dport), false)
			case unix.AF_INET6:
				t.addSocket(netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[8:24])), sport),
					netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[24:40])), dport),
					diagV6Only(body[inetDiagMsgLen:]))
			}
		}
	}
	return false, nil
}

// diagV6Only reads INET_DIAG_SKV6ONLY from the attributes that follow an
// inet_diag_msg. A kernel that does not send it (before 3.x) has no way to
// tell; the socket counts as dual-stack, Linux's default.
func diagV6Only(attrs []byte) bool {
	ne := binary.NativeEndian
	for len(attrs) >= rtattrHdrLen {
		n := int(ne.Uint16(attrs[0:]))
		if n < rtattrHdrLen || n > len(attrs) {
			return false
		}
		if ne.Uint16(attrs[2:]) == inetDiagV6Only && n > rtattrHdrLen {
			return attrs[rtattrHdrLen] != 0
		}
		attrs = attrs[min(nlmsgAlign(n), len(attrs)):]
	}
	return false
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
