package serfsync

import (
	"encoding/binary"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// The one exchange of the state channel. A sync request tells the peer what
// the sender holds of the peer's state and what the sender's own versions
// are; the answer carries the peer's versions and, where the sender holds
// an older one, the body. So one exchange both fetches and notifies: the
// peer schedules its own sync back when the sender's versions are news.

const (
	msgSyncRequest byte = 1
	msgSyncAnswer  byte = 2

	wantReport byte = 1 << 0 // the sender owns a VIPA: it needs reports
	maxName         = vipa.MaxNodeName
)

// syncRequest is what a node sends to a peer.
type syncRequest struct {
	from       string
	flags      byte
	heldReport digest // the peer's report as the sender holds it
	heldDefs   digest // the peer's definitions as the sender holds them
	report     digest // the sender's own report
	defs       digest // the sender's own definitions
}

// syncAnswer is the peer's reply.
type syncAnswer struct {
	from       string
	report     digest
	reportBody []byte // empty: not sent (held already, not wanted, or empty)
	defs       digest
	defsBody   []byte
}

func putDigest(e *enc, d digest) { e.u64(d.gen); e.u64(d.seq); e.u64(d.hash) }

func getDigest(d *dec) digest { return digest{d.u64(), d.u64(), d.u64()} }

// newMessage begins a state channel message: its type and its sender's
// name; rest is the size of what follows, so the buffer is allocated once.
func newMessage(typ byte, from string, rest int) enc {
	e := enc{b: make([]byte, 0, 1+binary.MaxVarintLen16+len(from)+rest)}
	e.byte(typ)
	e.string(from)
	return e
}

// openMessage begins reading a state channel message of type typ: the
// decoder and the sender's name. Another type or no sender fails the
// decoder, which closeMessage reports.
func openMessage(b []byte, typ byte) (dec, string) {
	d := dec{b: b}
	if d.byte() != typ {
		d.fail()
	}
	from := d.string(maxName)
	if from == "" {
		d.fail()
	}
	return d, from
}

// closeMessage returns the decoded message m, or its zero value and
// errDecode if d failed or has bytes left.
func closeMessage[M any](d *dec, m M) (M, error) {
	if d.end() != nil {
		var zero M
		return zero, errDecode
	}
	return m, nil
}

func (r *syncRequest) encode() []byte {
	e := newMessage(msgSyncRequest, r.from, 1+4*24)
	e.byte(r.flags)
	putDigest(&e, r.heldReport)
	putDigest(&e, r.heldDefs)
	putDigest(&e, r.report)
	putDigest(&e, r.defs)
	return e.b
}

func decodeSyncRequest(b []byte) (syncRequest, error) {
	d, from := openMessage(b, msgSyncRequest)
	r := syncRequest{from: from}
	r.flags = d.byte()
	r.heldReport = getDigest(&d)
	r.heldDefs = getDigest(&d)
	r.report = getDigest(&d)
	r.defs = getDigest(&d)
	return closeMessage(&d, r)
}

func (a *syncAnswer) encode() []byte {
	e := newMessage(msgSyncAnswer, a.from, 2*24+len(a.reportBody)+len(a.defsBody)+2*binary.MaxVarintLen32)
	putDigest(&e, a.report)
	e.bytes(a.reportBody)
	putDigest(&e, a.defs)
	e.bytes(a.defsBody)
	return e.b
}

func decodeSyncAnswer(b []byte) (syncAnswer, error) {
	d, from := openMessage(b, msgSyncAnswer)
	a := syncAnswer{from: from}
	a.report = getDigest(&d)
	a.reportBody = d.bytes(maxFrame)
	a.defs = getDigest(&d)
	a.defsBody = d.bytes(maxFrame)
	return closeMessage(&d, a)
}
