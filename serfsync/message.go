package serfsync

import "github.com/caddy-vipa/caddy-vipa/vipa"

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

func (r *syncRequest) encode() []byte {
	e := enc{b: make([]byte, 0, 2+len(r.from)+1+4*24+2)}
	e.byte(msgSyncRequest)
	e.string(r.from)
	e.byte(r.flags)
	putDigest(&e, r.heldReport)
	putDigest(&e, r.heldDefs)
	putDigest(&e, r.report)
	putDigest(&e, r.defs)
	return e.b
}

func decodeSyncRequest(b []byte) (syncRequest, error) {
	d := dec{b: b}
	var r syncRequest
	if d.byte() != msgSyncRequest {
		return r, errDecode
	}
	r.from = d.string(maxName)
	r.flags = d.byte()
	r.heldReport = getDigest(&d)
	r.heldDefs = getDigest(&d)
	r.report = getDigest(&d)
	r.defs = getDigest(&d)
	if err := d.end(); err != nil || r.from == "" {
		return syncRequest{}, errDecode
	}
	return r, nil
}

func (a *syncAnswer) encode() []byte {
	e := enc{b: make([]byte, 0, 2+len(a.from)+2*24+len(a.reportBody)+len(a.defsBody)+10)}
	e.byte(msgSyncAnswer)
	e.string(a.from)
	putDigest(&e, a.report)
	e.bytes(a.reportBody)
	putDigest(&e, a.defs)
	e.bytes(a.defsBody)
	return e.b
}

func decodeSyncAnswer(b []byte) (syncAnswer, error) {
	d := dec{b: b}
	var a syncAnswer
	if d.byte() != msgSyncAnswer {
		return a, errDecode
	}
	a.from = d.string(maxName)
	a.report = getDigest(&d)
	a.reportBody = d.bytes(maxFrame)
	a.defs = getDigest(&d)
	a.defsBody = d.bytes(maxFrame)
	if err := d.end(); err != nil || a.from == "" {
		return syncAnswer{}, errDecode
	}
	return a, nil
}
