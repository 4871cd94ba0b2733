package serfsync

import (
	"errors"
	"net/netip"
	"slices"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// A report line is a vipa.Listener. Version 1 of the report body carries
// its VIPA, Port and Ready; version 2 adds Conns, the connections the
// target holds from the routing node; version 3 adds the target's word on
// itself: its State (quiesced) and Weight (for targetweight), each line
// saying which of Conns, State and Weight it carries. The Address is always
// the reporting node's advertise address with Port, filled in by the
// routing node. A body is written in the lowest version that carries its
// lines (version 3 only when a line is quiesced or weighted or when only
// some lines count connections, version 2 when they all do), so one set of
// lines has one encoding; every version is read.

// Bounds of one report: far above any real host, far below what would let
// a peer exhaust the routing node's memory.
const (
	maxReportVIPAs = 1024
	maxReportLines = 16384
	reportV1       = 1 // port ready
	reportV2       = 2 // port ready conns
	reportV3       = 3 // port ready flags [conns] [weight]
)

// Flags of a version 3 line: what follows ready.
const (
	lineQuiesced byte = 1 << 0 // the target quiesced the line
	lineConns    byte = 1 << 1 // conns follows
	lineWeight   byte = 1 << 2 // weight (1 byte, 1-100) follows
	lineFlags         = lineQuiesced | lineConns | lineWeight
)

// flagsOf is what a canonical line says beyond port and ready.
func flagsOf(l vipa.Listener) byte {
	var f byte
	if l.State == vipa.StateQuiesced {
		f |= lineQuiesced
	}
	if l.Conns >= 0 {
		f |= lineConns
	}
	if l.Weight > 0 {
		f |= lineWeight
	}
	return f
}

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
// Ready (quiesced if either is, the higher weight), and leaves out lines
// that claim nothing (Ready < 1, port 0). A state other than quiesced and a
// weight outside 1-100 say nothing.
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
		var state vipa.RowState
		if l.State == vipa.StateQuiesced {
			state = l.State
		}
		weight := l.Weight
		if weight < 1 || weight > vipa.MaxWeight {
			weight = 0
		}
		out = append(out, vipa.Listener{VIPA: l.VIPA.Unmap(), Port: l.Port, Ready: l.Ready, Conns: conns, State: state, Weight: weight})
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
			if l.State == vipa.StateQuiesced {
				m.State = l.State
			}
			m.Weight = max(m.Weight, l.Weight)
			continue
		}
		l.Ready = min(l.Ready, vipa.MaxReady)
		merged = append(merged, l)
	}
	return merged
}

// encodeReport encodes canonical lines; a report without lines is empty.
//
//	version adv count(VIPA){ vipa count(port){ port(u16) ready LINE } }
//	LINE: version 1 nothing, 2 conns, 3 flags [conns] [weight(u8)]
//
// The version is the lowest that carries the lines: 3 when a line is
// quiesced or weighted, else 2 when a line carries Conns, else 1.
func encodeReport(adv netip.Addr, ls []vipa.Listener) []byte {
	if len(ls) == 0 {
		return nil
	}
	version := reportVersion(ls)
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
			switch version {
			case reportV2:
				e.uvarint(uint64(max(l.Conns, 0)))
			case reportV3:
				f := flagsOf(l)
				e.byte(f)
				if f&lineConns != 0 {
					e.uvarint(uint64(l.Conns))
				}
				if f&lineWeight != 0 {
					e.byte(byte(l.Weight))
				}
			}
		}
		i = j
	}
	return e.b
}

// reportVersion is the lowest version that carries canonical lines: 3 when
// a line is quiesced or weighted, or when some lines count connections and
// others do not (version 2 would say 0 for those); else 2 when the lines
// count connections, else 1.
func reportVersion(ls []vipa.Listener) byte {
	counted := 0
	for _, l := range ls {
		if flagsOf(l)&^lineConns != 0 {
			return reportV3
		}
		if l.Conns >= 0 {
			counted++
		}
	}
	switch counted {
	case 0:
		return reportV1
	case len(ls):
		return reportV2
	}
	return reportV3
}

// decodeReport decodes a body written by encodeReport, of any version, and
// insists it is canonical. Ready is returned as sent; validation judges
// it. Lines of a version 1 body, and version 3 lines without a count, have
// Conns vipa.NoConns.
func decodeReport(body []byte) (netip.Addr, []vipa.Listener, error) {
	if len(body) == 0 {
		return netip.Addr{}, nil, nil
	}
	d := dec{b: body}
	version := d.byte()
	if version < reportV1 || version > reportV3 {
		return netip.Addr{}, nil, errDecode
	}
	minLine := uint64(3) // port and ready
	if version > reportV1 {
		minLine = 4 // and conns or flags
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
			f := lineConns
			if version == reportV3 {
				if f = d.byte(); f&^lineFlags != 0 {
					d.fail()
				}
			}
			if version > reportV1 && f&lineConns != 0 {
				conns := d.uvarint()
				if conns > vipa.MaxConns {
					d.fail()
				}
				l.Conns = int(conns)
			}
			if f&lineQuiesced != 0 {
				l.State = vipa.StateQuiesced
			}
			if f&lineWeight != 0 {
				if l.Weight = int(d.byte()); l.Weight < 1 || l.Weight > vipa.MaxWeight {
					d.fail()
				}
			}
			out = append(out, l)
		}
	}
	if err := d.end(); err != nil {
		return netip.Addr{}, nil, err
	}
	if reportVersion(out) != version {
		return netip.Addr{}, nil, errDecode // a lower version carries these lines
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
