package serfsync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// Probes of one member, faster than serf's failure detection, for the
// owner of a VIPA and its backups (package vipadyn's Watch decides on
// them):
//
//   - Ping: memberlist's UDP ping, direct, sealed with the fleet key as all
//     gossip is; answered by the member's memberlist.
//   - Confirm: a probe request over the state channel (authenticated like a
//     sync) asks another member to ping the member itself and say whether it
//     answered, and if not whether its gossip port accepted a connection
//     from there: a path that avoids this node's link to it.
//   - Reachable: a TCP connect to the member's gossip port; a killed process
//     refuses at once, a live one's kernel accepts even while the process
//     is starved of CPU.
//
// A node that does not know the probe request drops it as malformed: the
// confirmation then has no answer and decides nothing.

const (
	msgProbeRequest byte = 3
	msgProbeAnswer  byte = 4

	// maxProbeRequest: type, the sender's name, the member's name.
	maxProbeRequest = 1 + 2*(2+maxName)
)

// probeRequest asks the receiver to ping target.
type probeRequest struct {
	from, target string
}

// probeAnswer says whether target answered the receiver's ping and, when
// it did not, whether its gossip port accepted the receiver's connection.
// On the wire one byte: 0 silent, 1 alive, 2 silent but reached (a node
// that predates it reads 2 as malformed: no word).
type probeAnswer struct {
	from, target string
	alive        bool
	reached      bool
}

func (r *probeRequest) encode() []byte {
	e := newMessage(msgProbeRequest, r.from, binary.MaxVarintLen16+len(r.target))
	e.string(r.target)
	return e.b
}

func decodeProbeRequest(b []byte) (probeRequest, error) {
	d, from := openMessage(b, msgProbeRequest)
	r := probeRequest{from: from, target: d.string(maxName)}
	if r.target == "" {
		d.fail()
	}
	return closeMessage(&d, r)
}

func (a *probeAnswer) encode() []byte {
	e := newMessage(msgProbeAnswer, a.from, binary.MaxVarintLen16+len(a.target)+1)
	e.string(a.target)
	v := byte(0)
	switch {
	case a.alive:
		v = 1
	case a.reached:
		v = 2
	}
	e.byte(v)
	return e.b
}

func decodeProbeAnswer(b []byte) (probeAnswer, error) {
	d, from := openMessage(b, msgProbeAnswer)
	a := probeAnswer{from: from, target: d.string(maxName)}
	v := d.byte()
	if a.target == "" || v > 2 {
		d.fail()
	}
	a.alive, a.reached = v == 1, v == 2
	return closeMessage(&d, a)
}

// ErrNotMember: the named node is not a live member here.
var ErrNotMember = errors.New("not a live member")

// ErrGone: the member's gossip port refused the connection: no process
// listens there any more.
var ErrGone = errors.New("member's gossip port refused the connection")

// memberAddr is the gossip address of the live member name.
func (a *Agent) memberAddr(name string) (netip.AddrPort, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.core.members[name]
	if !m.alive() || !m.addr.IsValid() {
		return netip.AddrPort{}, false
	}
	return m.addr, true
}

// ProbeTimeout is how long Ping waits for an answer: memberlist's probe
// timeout of the profile.
func (a *Agent) ProbeTimeout() time.Duration {
	mc, _ := memberlistConfig(a.cfg.Profile)
	return mc.ProbeTimeout
}

// Ping pings the live member name directly and reports whether it answered
// within ProbeTimeout.
func (a *Agent) Ping(name string) bool {
	addr, ok := a.memberAddr(name)
	a.mu.Lock()
	s := a.serf // nil until Start's serf.Create returns: a probe request may come first
	a.mu.Unlock()
	if !ok || s == nil {
		return false
	}
	_, err := s.Memberlist().Ping(name, net.UDPAddrFromAddrPort(addr))
	return err == nil
}

// accepter is a transport that can tell whether a port accepts
// connections without a stream of its own (netTransport.Accepts).
type accepter interface {
	Accepts(addr netip.AddrPort, timeout time.Duration) error
}

// Reachable reports whether the live member name's gossip port accepts a
// TCP connection within timeout; ErrGone when it refuses.
func (a *Agent) Reachable(name string, timeout time.Duration) (bool, error) {
	addr, ok := a.memberAddr(name)
	if !ok {
		return false, ErrNotMember
	}
	var err error
	if t, ok := a.mux.NodeAwareTransport.(accepter); ok {
		err = t.Accepts(addr, timeout)
	} else {
		var conn net.Conn
		conn, err = a.mux.NodeAwareTransport.DialAddressTimeout(memberlist.Address{Addr: addr.String(), Name: name}, timeout)
		if err == nil {
			_ = conn.Close()
		}
	}
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return false, ErrGone
		}
		return false, err
	}
	return true, nil
}

// Confirmation is a member's word on a target it was asked to ping.
type Confirmation struct {
	Alive   bool // the target answered its ping
	Reached bool // it did not, but its gossip port accepted its connection
}

// Confirm asks the live member via to ping target and reports what it
// found. ErrGone: via's gossip port refused the connection; any other
// error: no word from via (a node that predates the probe request drops
// it).
func (a *Agent) Confirm(via, target string) (Confirmation, error) {
	alive, reached, err := a.confirm(via, target)
	return Confirmation{Alive: alive, Reached: reached}, err
}

func (a *Agent) confirm(via, target string) (alive, reached bool, err error) {
	addr, ok := a.memberAddr(via)
	if !ok {
		return false, false, ErrNotMember
	}
	a.stats.inc("probe_out")
	req := probeRequest{from: a.cfg.NodeName, target: target}
	conn, err := a.dial(via, addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return false, false, ErrGone
		}
		return false, false, err
	}
	defer a.untrack(conn)
	// The peer's ping takes up to its probe timeout; the rest is a few
	// round trips.
	_ = conn.SetDeadline(time.Now().Add(a.ProbeTimeout() + confirmSlack))
	br := bufio.NewReader(conn)
	nonceC, err := a.keys.clientHello(conn)
	if err != nil {
		return false, false, err
	}
	nonceS, err := readServerHello(br)
	if err != nil {
		return false, false, err
	}
	s, err := a.keys.clientSession(nonceC, nonceS)
	if err != nil {
		return false, false, err
	}
	if err := writeFrame(conn, s.seal(req.encode())); err != nil {
		return false, false, err
	}
	frame, err := readFrame(br, maxAnswerFrame)
	if err != nil {
		return false, false, err
	}
	p, err := s.open(frame)
	if err != nil {
		a.stats.inc("auth_fail")
		return false, false, err
	}
	ans, err := decodeProbeAnswer(p)
	if err != nil || ans.target != target {
		a.stats.inc("drop_decode")
		return false, false, errDecode
	}
	return ans.alive, ans.reached, nil
}

// confirmSlack is what a confirmation may take beyond the peer's ping: the
// connection, the hellos and the frames, on a loaded host.
const confirmSlack = 500 * time.Millisecond

// answerProbe pings the member a probe request names and, at the same
// time, tries its gossip port: a port that accepts says the member's host
// and socket live on this path even when its ping went unanswered (a
// starved process, or a loaded host that read the answer too late). A name
// that is not a live member here has not answered.
func (a *Agent) answerProbe(req probeRequest) probeAnswer {
	a.stats.inc("probe_in")
	reached := make(chan bool, 1)
	go func() {
		ok, _ := a.Reachable(req.target, a.ProbeTimeout())
		reached <- ok
	}()
	ans := probeAnswer{from: a.cfg.NodeName, target: req.target, alive: a.Ping(req.target)}
	ans.reached = <-reached && !ans.alive
	return ans
}
