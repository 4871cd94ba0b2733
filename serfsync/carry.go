package serfsync

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Carried state: what a routing node knows of the rows it routes that its
// targets' reports do not say, kept by the standbys of its VIPAs so a
// takeover starts from it: the drains it applies to targets (a quiesce with
// node on the routing node) and each row's health from its own dials.
//
// A standby asks each live routing node of the VIPAs it stands by for
// every CarryPeriod over the state channel, naming the hash of the state it
// holds; the routing node answers with its state only when that differs,
// so an unchanged state costs one small exchange a period and a change
// reaches the standbys within a period. The asks to one routing node go
// over one stream, kept open while both keep to the period (the channel's
// handshake once, not per ask; the routing node closes it after carryIdle
// without an ask); a stream that ends is opened again at the next ask,
// and one whose answer is not to be trusted (it fails to open, decode or
// verify, counted as auth_fail, drop_decode, drop_hash or drop_size) is
// closed and the ask counted as failed. A node that predates the
// exchange drops the request as malformed (counted there as drop_decode);
// the standby then counts carry_fail and asks that node again only after a
// backoff (up to 30 s). One that predates carry streams answers one ask
// per stream: the standby opens a stream per ask to it, as before.
//
//	request: type from(string) held(u64)
//	answer:  type from(string) hash(u64) body(bytes; empty: the held one is current)
//	body:    version(1) count(drain){flags vipa port node} count(row){vipa port node tsr flags}
//
// A drain's flags: bit 0 quiesced (else a resume); its vipa is the family
// byte 0 when unset, its port 0 when unset, its node is never empty. A
// row's tsr is 0-100, its flags bit 0 unhealthy. Rows are sorted by VIPA,
// port and node and appear once; only rows that are unhealthy or below a
// TSR of 100 are sent (the others are healthy at 100). A body that breaks
// these rules, or the bounds below, is dropped whole and counted as
// drop_decode; the standby keeps what it held.

const (
	msgCarryRequest byte = 5
	msgCarryAnswer  byte = 6

	carryVersion = 1

	// maxCarryRequest: type, the sender's name, the held hash.
	maxCarryRequest = 1 + 2 + maxName + 8

	// MaxCarriedDrains and MaxCarriedRows bound a body; a routing node
	// with more leaves the rest out (logged) rather than send one that
	// standbys refuse.
	// At their bounds (IPv6 VIPAs, names of maxName bytes) a body is
	// about 930 KB, within maxCarryBody.
	MaxCarriedDrains = 4096
	MaxCarriedRows   = 2048

	// maxCarryBody is the bound of an encoded body: within one answer frame.
	maxCarryBody = maxFrame - 1024

	// CarryPeriod is how often a standby asks each routing node it stands
	// by for; carryBackoffMax bounds the wait after failures.
	CarryPeriod     = time.Second
	carryBackoffMax = 30 * time.Second

	// carryIdle closes a carry stream whose standby stopped asking;
	// maxCarryStreams bounds the streams a routing node keeps open (one
	// per standby of its VIPAs).
	carryIdle       = exchangeTimeout + 5*CarryPeriod
	maxCarryStreams = 256

	kindCarry byte = 'c'

	drainQuiesced  = 1 << 0
	rowUnhealthy   = 1 << 0
	minCarriedRow  = 1 + 4 + 2 + 2 + 1 + 1 // vipa, port, node of one byte, tsr, flags
	minCarriedRule = 1 + 1 + 2 + 2         // flags, unset vipa, port, node of one byte
)

// Drain is one of a routing node's drain rules, in the order it applies
// them (the last that selects a row wins). Unset VIPA and Port match any.
type Drain struct {
	VIPA     netip.Addr
	Port     uint16
	Node     string
	Quiesced bool // false: a resume
}

// RowHealth is the health of one of a routing node's DPT rows.
type RowHealth struct {
	VIPA      netip.Addr
	Port      uint16
	Node      string
	TSR       int // 0-100
	Unhealthy bool
}

// OwnerState is what a routing node shares with its standbys.
type OwnerState struct {
	Drains []Drain
	Health []RowHealth // only rows unhealthy or below a TSR of 100
}

type carryRequest struct {
	from string
	held uint64
}

type carryAnswer struct {
	from string
	hash uint64
	body []byte
}

func (r *carryRequest) encode() []byte {
	e := newMessage(msgCarryRequest, r.from, 8)
	e.u64(r.held)
	return e.b
}

func decodeCarryRequest(b []byte) (carryRequest, error) {
	d, from := openMessage(b, msgCarryRequest)
	r := carryRequest{from: from, held: d.u64()}
	return closeMessage(&d, r)
}

func (a *carryAnswer) encode() []byte {
	e := newMessage(msgCarryAnswer, a.from, 8+binary.MaxVarintLen32+len(a.body))
	e.u64(a.hash)
	e.bytes(a.body)
	return e.b
}

func decodeCarryAnswer(b []byte) (carryAnswer, error) {
	d, from := openMessage(b, msgCarryAnswer)
	a := carryAnswer{from: from}
	a.hash = d.u64()
	a.body = d.bytes(maxCarryBody)
	return closeMessage(&d, a)
}

// encodeOwnerState encodes s canonically (rows sorted, healthy rows at
// 100 and repeats left out) within the bounds; it returns how many drains
// and rows it had to leave out.
func encodeOwnerState(s OwnerState) (body []byte, left int) {
	rows := slices.DeleteFunc(slices.Clone(s.Health), func(r RowHealth) bool { return !r.Unhealthy && r.TSR >= 100 })
	slices.SortFunc(rows, compareRows)
	rows = slices.CompactFunc(rows, func(x, y RowHealth) bool { return compareRows(x, y) == 0 })
	drains := s.Drains
	if len(drains) > MaxCarriedDrains {
		left += len(drains) - MaxCarriedDrains
		drains = drains[len(drains)-MaxCarriedDrains:] // the later rules win
	}
	if len(rows) > MaxCarriedRows {
		left += len(rows) - MaxCarriedRows
		rows = rows[:MaxCarriedRows]
	}
	e := enc{b: make([]byte, 0, 16+len(drains)*16+len(rows)*24)}
	e.byte(carryVersion)
	e.uvarint(uint64(len(drains)))
	for _, r := range drains {
		var flags byte
		if r.Quiesced {
			flags |= drainQuiesced
		}
		e.byte(flags)
		e.addr(r.VIPA.Unmap())
		e.u16(r.Port)
		e.string(r.Node)
	}
	e.uvarint(uint64(len(rows)))
	for _, r := range rows {
		e.addr(r.VIPA.Unmap())
		e.u16(r.Port)
		e.string(r.Node)
		e.byte(byte(min(max(r.TSR, 0), 100)))
		var flags byte
		if r.Unhealthy {
			flags |= rowUnhealthy
		}
		e.byte(flags)
	}
	if len(e.b) > maxCarryBody {
		// unreachable within the bounds above; names beyond maxName
		// would get here: send the drains alone
		return encodeOwnerState(OwnerState{Drains: drains})
	}
	return e.b, left
}

func compareRows(x, y RowHealth) int {
	if c := x.VIPA.Compare(y.VIPA); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Port, y.Port); c != 0 {
		return c
	}
	return strings.Compare(x.Node, y.Node)
}

// decodeOwnerState decodes a body, refusing anything but the canonical
// encoding within bounds, and names that are not node names.
func decodeOwnerState(body []byte) (OwnerState, error) {
	d := dec{b: body}
	var s OwnerState
	if d.byte() != carryVersion {
		return s, errDecode
	}
	n := d.count(MaxCarriedDrains)
	if uint64(len(d.b)) < uint64(n)*minCarriedRule {
		return OwnerState{}, errDecode
	}
	for range n {
		flags := d.byte()
		r := Drain{Quiesced: flags&drainQuiesced != 0}
		if len(d.b) > 0 && d.b[0] == 0 {
			d.byte()
		} else {
			r.VIPA = d.addr()
		}
		r.Port = d.u16()
		r.Node = d.string(maxName)
		if flags&^drainQuiesced != 0 || vipa.ValidateNodeName(r.Node) != nil {
			d.fail()
		}
		s.Drains = append(s.Drains, r)
	}
	n = d.count(MaxCarriedRows)
	if uint64(len(d.b)) < uint64(n)*minCarriedRow {
		return OwnerState{}, errDecode
	}
	for i := range n {
		r := RowHealth{VIPA: d.addr(), Port: d.u16(), Node: d.string(maxName), TSR: int(d.byte())}
		flags := d.byte()
		r.Unhealthy = flags&rowUnhealthy != 0
		if flags&^rowUnhealthy != 0 || r.Port == 0 || r.TSR > 100 || (!r.Unhealthy && r.TSR == 100) ||
			vipa.ValidateNodeName(r.Node) != nil || (i > 0 && compareRows(s.Health[i-1], r) >= 0) {
			d.fail()
		}
		s.Health = append(s.Health, r)
	}
	if err := d.end(); err != nil {
		return OwnerState{}, err
	}
	return s, nil
}

// answerCarry answers a standby with this node's state, or only its hash
// when the standby holds it already.
func (a *Agent) answerCarry(req carryRequest) carryAnswer {
	a.stats.inc("carry_in")
	var s OwnerState
	if a.OwnerState != nil {
		s = a.OwnerState()
	}
	body, left := encodeOwnerState(s)
	if left > 0 {
		a.stats.sampled(a.logger, zap.WarnLevel, "carry_left", "drains and row health left out of the state shared with standbys: over the bounds",
			zap.Int("left_out", left))
	}
	ans := carryAnswer{from: a.cfg.NodeName, hash: hashBody(kindCarry, body)}
	if ans.hash != req.held {
		ans.body = body
	}
	return ans
}

// carryOwners lists the live routing nodes of the VIPAs this node stands
// by for, other than itself, with their gossip addresses.
func (a *Agent) carryOwners() map[string]netip.AddrPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.core
	out := map[string]netip.AddrPort{}
	for v := range c.standby {
		o := c.ownerOf[v]
		if m := c.members[o]; o != "" && o != c.name && m.alive() && m.addr.IsValid() {
			out[o] = m.addr
		}
	}
	return out
}

// carryPeer is what a standby holds of one routing node: the hash of
// the state it holds, its failures, and its open carry stream, if any.
type carryPeer struct {
	held  uint64
	fails int
	next  time.Time // no ask before this, after failures

	addr netip.AddrPort
	conn net.Conn // nil: none open
	br   *bufio.Reader
	s    *session
}

// carrier asks the routing nodes this node stands by for for their state
// every CarryPeriod, one after another, and hands what changed to
// OnOwnerState.
func (a *Agent) carrier() {
	defer a.wg.Done()
	peers := map[string]*carryPeer{}
	defer func() {
		for _, p := range peers {
			a.closeCarry(p)
		}
	}()
	tick := time.NewTicker(CarryPeriod)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-tick.C:
			owners := a.carryOwners()
			for name, p := range peers {
				if _, ok := owners[name]; !ok {
					a.closeCarry(p)
					delete(peers, name)
				}
			}
			for name, addr := range owners {
				p := peers[name]
				if p == nil {
					p = &carryPeer{}
					peers[name] = p
				}
				if p.addr != addr {
					a.closeCarry(p) // a new address: a restarted or moved node
					p.addr = addr
				}
				if now.Before(p.next) {
					continue
				}
				s, hash, err := a.fetchCarry(name, p)
				if err != nil {
					a.stats.inc("carry_fail")
					p.fails++
					p.next = time.Now().Add(min(CarryPeriod<<min(p.fails, 6), carryBackoffMax))
					continue
				}
				p.fails, p.next = 0, time.Time{}
				if hash == p.held {
					continue
				}
				p.held = hash
				if a.OnOwnerState != nil {
					a.OnOwnerState(name, s)
				}
			}
		}
	}
}

var errCarryFrom = errors.New("carried state from another node")

// fetchCarry asks name for its state on the stream open to it, or a new
// one; an unchanged state returns p.held. A stream that ends before its
// answer (the routing node closed it idle, restarted, or predates carry
// streams and answers one ask per stream) is opened again at once, once;
// one that times out, or brings an answer not to be trusted, is closed
// and the ask fails.
func (a *Agent) fetchCarry(name string, p *carryPeer) (OwnerState, uint64, error) {
	reused := p.conn != nil
	s, hash, err := a.askCarry(name, p)
	var ne net.Error
	if err != nil && reused && errors.Is(err, errCarryStream) && !(errors.As(err, &ne) && ne.Timeout()) {
		a.closeCarry(p)
		s, hash, err = a.askCarry(name, p)
	}
	if err != nil {
		a.closeCarry(p)
	}
	return s, hash, err
}

// errCarryStream wraps the errors of a carry stream's transport, as
// against what its routing node sent.
var errCarryStream = errors.New("carry stream")

// askCarry sends one carry request on p's stream, opening it first if
// none is open, and reads the answer.
func (a *Agent) askCarry(name string, p *carryPeer) (OwnerState, uint64, error) {
	a.stats.inc("carry_out")
	if p.conn == nil {
		if err := a.openCarry(name, p); err != nil {
			return OwnerState{}, 0, err
		}
	}
	_ = p.conn.SetDeadline(time.Now().Add(exchangeTimeout))
	req := carryRequest{from: a.cfg.NodeName, held: p.held}
	if err := writeFrame(p.conn, p.s.seal(req.encode())); err != nil {
		return OwnerState{}, 0, fmt.Errorf("%w: %w", errCarryStream, err)
	}
	frame, err := readFrame(p.br, maxAnswerFrame)
	if err == errFrame {
		a.stats.inc("drop_size")
		return OwnerState{}, 0, err
	}
	if err != nil {
		return OwnerState{}, 0, fmt.Errorf("%w: %w", errCarryStream, err)
	}
	msg, err := p.s.open(frame)
	if err != nil {
		a.stats.inc("auth_fail")
		return OwnerState{}, 0, err
	}
	ans, err := decodeCarryAnswer(msg)
	if err != nil {
		a.stats.inc("drop_decode")
		return OwnerState{}, 0, err
	}
	if ans.from != name {
		a.stats.inc("drop_decode")
		return OwnerState{}, 0, errCarryFrom
	}
	if len(ans.body) == 0 {
		if ans.hash != p.held {
			a.stats.inc("drop_decode") // claims a change and sends none
			return OwnerState{}, 0, errDecode
		}
		return OwnerState{}, p.held, nil
	}
	if hashBody(kindCarry, ans.body) != ans.hash {
		a.stats.inc("drop_hash")
		return OwnerState{}, 0, errDecode
	}
	st, err := decodeOwnerState(ans.body)
	if err != nil {
		a.stats.inc("drop_decode")
		a.stats.sampled(a.logger, zap.WarnLevel, "carry_decode", "dropped a routing node's carried state: malformed",
			zap.String("node", name))
		return OwnerState{}, 0, err
	}
	return st, ans.hash, nil
}

// openCarry opens a carry stream to name and runs the channel's
// handshake on it.
func (a *Agent) openCarry(name string, p *carryPeer) error {
	conn, err := a.dial(name, p.addr)
	if err != nil {
		return err
	}
	a.stats.inc("carry_stream")
	_ = conn.SetDeadline(time.Now().Add(exchangeTimeout))
	br := bufio.NewReader(conn)
	nonceC, err := a.keys.clientHello(conn)
	if err == nil {
		var nonceS []byte
		if nonceS, err = readServerHello(br); err == nil {
			p.s, err = a.keys.clientSession(nonceC, nonceS)
		}
	}
	if err != nil {
		a.untrack(conn)
		return err
	}
	p.conn, p.br = conn, br
	return nil
}

// closeCarry closes p's stream, if open.
func (a *Agent) closeCarry(p *carryPeer) {
	if p.conn != nil {
		a.untrack(p.conn)
	}
	p.conn, p.br, p.s = nil, nil, nil
}

// serveCarry answers a standby's carry requests on one stream, the first
// already opened (p), for as long as the standby keeps asking: a request
// every CarryPeriod, the stream closed after carryIdle without one. Past
// maxCarryStreams open streams it answers one request per stream, as
// nodes did before carry streams. A request naming another sender than
// the stream's first, or one that fails to open or decode, ends the
// stream.
func (a *Agent) serveCarry(conn net.Conn, s *session, p []byte) {
	keep := a.carryStreams.Add(1) <= maxCarryStreams && (a.cfg.hooks == nil || !a.cfg.hooks.carryOneShot)
	defer a.carryStreams.Add(-1)
	from := ""
	for {
		req, err := decodeCarryRequest(p)
		if err != nil || (from != "" && req.from != from) {
			a.stats.inc("drop_decode")
			return
		}
		from = req.from
		ans := a.answerCarry(req)
		if h := a.cfg.hooks; h != nil && h.carryAnswer != nil {
			h.carryAnswer(&ans)
		}
		_ = conn.SetDeadline(time.Now().Add(exchangeTimeout))
		if err := writeFrame(conn, s.seal(ans.encode())); err != nil || !keep {
			return
		}
		_ = conn.SetDeadline(time.Now().Add(carryIdle))
		frame, err := readFrame(conn, maxRequestFrame)
		if err == errFrame {
			a.stats.inc("drop_size")
		}
		if err != nil {
			return
		}
		if p, err = s.open(frame); err != nil {
			a.stats.inc("auth_fail")
			return
		}
	}
}
