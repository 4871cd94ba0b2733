package serfsync

import (
	"errors"
	"net/netip"
	"slices"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// A report line is a vipa.Listener. Version 1 of the report body carries
// its VIPA, Port and Ready; version 2 adds Conns, the connections the
// target holds from the routing node. The Address is always the reporting
// node's advertise address with Port, filled in by the routing node. A
// body whose lines carry no Conns (all vipa.NoConns) is written as
// version 1, so one set of lines has one encoding; both are read.

// Bounds of one report: far above any real host, far below what would let
// a peer exhaust the routing node's memory.
const (
	maxReportVIPAs = 1024
	maxReportLines = 16384
	reportV1       = 1 // port ready
	reportV2       = 2 // port ready conns
)

var errSize = errors.New("message exceeds a size limit")

// report is one version of a node's listener report.
type report struct {
	digest
	adv   netip.Addr
	lines []vipa.Listener // canonical: sorted by VIPA then Port, unique
	body  []byte          // canonical encoding; empty for no lines
}

func compareListener(a, b vipa.Listener) int {
	if c := a.VIPA.Compare(b.VIPA); c != 0 {
		return c
	}
	return int(a.Port) - int(b.Port)
}

// canonicalListeners sorts a copy, merges duplicate lines by adding their
// Ready, and leaves out lines that claim nothing (Ready < 1, port 0).
func canonicalListeners(ls []vipa.Listener) []vipa.Listener {
	out := make([]vipa.Listener, 0, len(ls))
	for _, l := range ls {
		if l.Ready < 1 || l.Port == 0 || !l.VIPA.IsValid() {
			continue
		}
		// Only what the body carries: the line as a peer will decode it.
		conns := min(l.Conns, vipa.MaxConns)
		if conns < 0 {
			conns = vipa.NoConns
		}
		out = append(out, vipa.Listener{VIPA: l.VIPA.Unmap(), Port: l.Port, Ready: l.Ready, Conns: conns})
	}
	slices.SortFunc(out, compareListener)
	merged := out[:0]
	for _, l := range out {
		if n := len(merged); n > 0 && compareListener(merged[n-1], l) == 0 {
			m := &merged[n-1]
			m.Ready = min(m.Ready+l.Ready, vipa.MaxReady)
			if m.Conns >= 0 || l.Conns >= 0 {
				m.Conns = min(max(m.Conns, 0)+max(l.Conns, 0), vipa.MaxConns)
			}
			continue
		}
		l.Ready = min(l.Ready, vipa.MaxReady)
		merged = append(merged, l)
	}
	return merged
}

// encodeReport encodes canonical lines; a report without lines is empty.
//
//	version adv count(VIPA){ vipa count(port){ port(u16) ready [conns] } }
//
// Version 1 has no conns; it is written when no line carries Conns.
func encodeReport(adv netip.Addr, ls []vipa.Listener) []byte {
	if len(ls) == 0 {
		return nil
	}
	version := byte(reportV1)
	if slices.ContainsFunc(ls, func(l vipa.Listener) bool { return l.Conns >= 0 }) {
		version = reportV2
	}
	e := enc{b: make([]byte, 0, 24+len(ls)*6)}
	e.byte(version)
	e.addr(adv)
	var vipas int
	for i := range ls {
		if i == 0 || ls[i].VIPA != ls[i-1].VIPA {
			vipas++
		}
	}
	e.uvarint(uint64(vipas))
	for i := 0; i < len(ls); {
		j := i
		for j < len(ls) && ls[j].VIPA == ls[i].VIPA {
			j++
		}
		e.addr(ls[i].VIPA)
		e.uvarint(uint64(j - i))
		for _, l := range ls[i:j] {
			e.u16(l.Port)
			e.uvarint(uint64(l.Ready))
			if version == reportV2 {
				e.uvarint(uint64(max(l.Conns, 0)))
			}
		}
		i = j
	}
	return e.b
}

// decodeReport decodes a body written by encodeReport, of either version,
// and insists it is canonical. Ready is returned as sent; validation judges
// it. Lines of a version 1 body have Conns vipa.NoConns.
func decodeReport(body []byte) (netip.Addr, []vipa.Listener, error) {
	if len(body) == 0 {
		return netip.Addr{}, nil, nil
	}
	d := dec{b: body}
	version := d.byte()
	if version != reportV1 && version != reportV2 {
		return netip.Addr{}, nil, errDecode
	}
	minLine := uint64(3) // port and ready
	if version == reportV2 {
		minLine = 4 // and conns
	}
	adv := d.addr()
	vipas := d.uvarint()
	if vipas == 0 || vipas > maxReportVIPAs {
		return netip.Addr{}, nil, sizeOrDecode(d.err, vipas == 0)
	}
	var out []vipa.Listener
	var prev netip.Addr
	for i := uint64(0); i < vipas && d.err == nil; i++ {
		v := d.addr()
		if i > 0 && v.Compare(prev) <= 0 {
			d.fail()
		}
		prev = v
		n := d.uvarint()
		if n == 0 || uint64(len(out))+n > maxReportLines {
			return netip.Addr{}, nil, sizeOrDecode(d.err, n == 0)
		}
		if uint64(len(d.b)) < minLine*n {
			d.fail()
			break
		}
		var lastPort uint16
		for k := uint64(0); k < n && d.err == nil; k++ {
			l := vipa.Listener{VIPA: v, Port: d.u16()}
			ready := d.uvarint()
			if k > 0 && l.Port <= lastPort || ready > 1<<31 {
				d.fail()
			}
			lastPort, l.Ready, l.Conns = l.Port, int(ready), vipa.NoConns
			if version == reportV2 {
				conns := d.uvarint()
				if conns > vipa.MaxConns {
					d.fail()
				}
				l.Conns = int(conns)
			}
			out = append(out, l)
		}
	}
	if err := d.end(); err != nil {
		return netip.Addr{}, nil, err
	}
	return adv, out, nil
}

func sizeOrDecode(err error, malformed bool) error {
	if err != nil || malformed {
		return errDecode
	}
	return errSize
}

// boundedLines is how many canonical lines fit the report bounds.
func boundedLines(ls []vipa.Listener) int {
	vipas := 0
	for i, l := range ls {
		if i == 0 || l.VIPA != ls[i-1].VIPA {
			vipas++
		}
		if i == maxReportLines || vipas > maxReportVIPAs {
			return i
		}
	}
	return len(ls)
}

// vipasOf lists the distinct VIPAs of two canonical line sets.
func vipasOf(x, y []vipa.Listener) []netip.Addr {
	var out []netip.Addr
	for _, ls := range [][]vipa.Listener{x, y} {
		for _, l := range ls {
			if !slices.Contains(out, l.VIPA) {
				out = append(out, l.VIPA)
			}
		}
	}
	return out
}
