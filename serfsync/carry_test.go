package serfsync

import (
	"bytes"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestOwnerStateRoundTrip(t *testing.T) {
	in := OwnerState{
		Drains: []Drain{
			{Node: "n02", Quiesced: true},
			{VIPA: vipaA, Port: 8080, Node: "n02"},
			{VIPA: netip.MustParseAddr("fd00::1"), Node: "n03", Quiesced: true},
		},
		Health: []RowHealth{
			{VIPA: vipaB, Port: 80, Node: "n01", TSR: 100},                   // full health: left out
			{VIPA: vipaA, Port: 8081, Node: "n03", TSR: 20, Unhealthy: true}, // out of order: sorted
			{VIPA: vipaA, Port: 8080, Node: "n03", TSR: 97},
		},
	}
	body, left := encodeOwnerState(in)
	if left != 0 {
		t.Fatalf("left out %d", left)
	}
	got, err := decodeOwnerState(body)
	if err != nil {
		t.Fatal(err)
	}
	want := OwnerState{Drains: in.Drains, Health: []RowHealth{in.Health[2], in.Health[1]}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
	again, _ := encodeOwnerState(got)
	if string(again) != string(body) {
		t.Fatal("a decoded state encodes differently: one meaning, two bodies")
	}
	empty, _ := encodeOwnerState(OwnerState{})
	if s, err := decodeOwnerState(empty); err != nil || len(s.Drains)+len(s.Health) != 0 {
		t.Fatalf("empty state: %+v %v", s, err)
	}
}

// TestOwnerStateRefused: a body off the canonical encoding or its bounds
// is refused whole.
func TestOwnerStateRefused(t *testing.T) {
	body := func(f func(e *enc)) []byte {
		e := enc{}
		f(&e)
		return e.b
	}
	type row struct {
		port       uint16
		node       string
		tsr, flags byte
	}
	// rows is a body of no drains and these rows, as written.
	rows := func(rs ...row) []byte {
		return body(func(e *enc) {
			e.byte(carryVersion)
			e.uvarint(0)
			e.uvarint(uint64(len(rs)))
			for _, r := range rs {
				e.addr(vipaA)
				e.u16(r.port)
				e.string(r.node)
				e.byte(r.tsr)
				e.byte(r.flags)
			}
		})
	}
	// drain is a body of one drain of any VIPA and port, and no rows.
	drain := func(flags byte, node string) []byte {
		return body(func(e *enc) {
			e.byte(carryVersion)
			e.uvarint(1)
			e.byte(flags)
			e.byte(0)
			e.u16(0)
			e.string(node)
			e.uvarint(0)
		})
	}
	cases := map[string][]byte{
		"empty":   nil,
		"version": body(func(e *enc) { e.byte(2); e.uvarint(0); e.uvarint(0) }),
		"trailing": body(func(e *enc) {
			e.byte(carryVersion)
			e.uvarint(0)
			e.uvarint(0)
			e.byte(0)
		}),
		"drain flag":         drain(2, "n01"),
		"drain without node": drain(1, ""),
		"too many drains":    body(func(e *enc) { e.byte(carryVersion); e.uvarint(MaxCarriedDrains + 1) }),
		"too many rows":      body(func(e *enc) { e.byte(carryVersion); e.uvarint(0); e.uvarint(MaxCarriedRows + 1) }),
		"tsr over 100":       rows(row{80, "n01", 101, 1}),
		"full health sent":   rows(row{80, "n01", 100, 0}),
		"row flag":           rows(row{80, "n01", 10, 3}),
		"port 0":             rows(row{0, "n01", 10, 1}),
		"bad name":           rows(row{80, "n 01", 10, 1}),
		"unsorted":           rows(row{81, "n01", 10, 1}, row{80, "n01", 10, 1}),
		"repeated":           rows(row{80, "n01", 10, 1}, row{80, "n01", 10, 1}),
	}
	for name, b := range cases {
		if s, err := decodeOwnerState(b); err == nil {
			t.Errorf("%s: decoded as %+v", name, s)
		}
	}
}

// TestOwnerStateBounds: a state past the bounds is cut to them, keeping
// the later drains (they win), and what is sent decodes.
func TestOwnerStateBounds(t *testing.T) {
	var s OwnerState
	for i := range MaxCarriedDrains + 10 {
		s.Drains = append(s.Drains, Drain{Port: uint16(i + 1), Node: "n01", Quiesced: true})
	}
	for i := range MaxCarriedRows + 5 {
		s.Health = append(s.Health, RowHealth{VIPA: vipaA, Port: uint16(i + 1), Node: "n01", Unhealthy: true})
	}
	body, left := encodeOwnerState(s)
	if left != 15 || len(body) > maxCarryBody {
		t.Fatalf("left %d out, body %d bytes", left, len(body))
	}
	// The largest body the bounds allow fits one frame.
	long := strings.Repeat("n", maxName)
	v6 := netip.MustParseAddr("fd00::1")
	var big OwnerState
	for i := range MaxCarriedDrains {
		big.Drains = append(big.Drains, Drain{VIPA: v6, Port: uint16(i + 1), Node: long, Quiesced: true})
	}
	for i := range MaxCarriedRows {
		big.Health = append(big.Health, RowHealth{VIPA: v6, Port: uint16(i + 1), Node: long, Unhealthy: true})
	}
	if b, left := encodeOwnerState(big); left != 0 || len(b) > maxCarryBody {
		t.Fatalf("largest state: %d bytes, %d left out", len(b), left)
	} else if got, err := decodeOwnerState(b); err != nil || len(got.Health) != MaxCarriedRows {
		t.Fatalf("largest state decodes: %v", err)
	}
	got, err := decodeOwnerState(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Drains) != MaxCarriedDrains || got.Drains[len(got.Drains)-1].Port != MaxCarriedDrains+10 || len(got.Health) != MaxCarriedRows {
		t.Fatalf("%d drains ending at port %d, %d rows", len(got.Drains), got.Drains[len(got.Drains)-1].Port, len(got.Health))
	}
}

func TestCarryMessages(t *testing.T) {
	r := carryRequest{from: "n01", held: 42}
	if got, err := decodeCarryRequest(r.encode()); err != nil || got != r {
		t.Fatalf("%+v %v", got, err)
	}
	if len((&carryRequest{from: strings.Repeat("n", maxName), held: 1}).encode()) > maxRequest {
		t.Fatal("the longest carry request exceeds the request frame")
	}
	a := carryAnswer{from: "n00", hash: 7, body: []byte{1, 0, 0}}
	if got, err := decodeCarryAnswer(a.encode()); err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := decodeCarryRequest(append(r.encode(), 0)); err == nil {
		t.Fatal("a request with a trailing byte decoded")
	}
	if _, err := decodeSyncRequest(r.encode()); err == nil {
		t.Fatal("a carry request reads as a sync request: an older node would misread it")
	}
}

// TestCarriedState: a standby gets the state of the routing node of the
// VIPA it stands by for over the state channel, again only when it
// changes, and an unchanged state costs no body.
func TestCarriedState(t *testing.T) {
	o := fleetOpts{profile: vipa.ProfileFast}
	var mu sync.Mutex
	state := OwnerState{Drains: []Drain{{VIPA: vipaA, Node: "n02", Quiesced: true}}}
	var got []OwnerState
	owner := startNodeWith(t, o.config("n00", testIP(0), 0, nil), func(n *tnode) {
		n.OwnerState = func() OwnerState {
			mu.Lock()
			defer mu.Unlock()
			return state
		}
	})
	join := []string{owner.BindAddr().String()}
	standby := startNodeWith(t, o.config("n01", testIP(1), 0, join), func(n *tnode) {
		n.OnOwnerState = func(from string, s OwnerState) {
			if from != "n00" {
				t.Errorf("state from %s", from)
			}
			mu.Lock()
			defer mu.Unlock()
			got = append(got, s)
		}
	})
	other := startNode(t, o.config("n02", testIP(2), 0, join))
	nodes := []*tnode{owner, standby, other}
	t.Cleanup(func() { stopAll(nodes) })
	owner.SetDefinitions([]*vipa.Definition{def(vipaA.String(), "n00", ports("8080"))})
	standby.SetVIPADyn(VIPADyn{Ranks: map[netip.Addr]int{vipaA: 100}})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	waitFor(t, 20*time.Second, "the standby holds the routing node's drains", func() bool { return count() >= 1 })
	mu.Lock()
	if !reflect.DeepEqual(got[0], state) {
		t.Errorf("carried %+v, want %+v", got[0], state)
	}
	state = OwnerState{Health: []RowHealth{{VIPA: vipaA, Port: 8080, Node: "n02", TSR: 12, Unhealthy: true}}}
	mu.Unlock()
	waitFor(t, 20*time.Second, "the standby holds the new state", func() bool { return count() >= 2 })
	asked := standby.Stats()["carry_out"]
	waitFor(t, 20*time.Second, "three more asks", func() bool { return standby.Stats()["carry_out"] >= asked+3 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || !reflect.DeepEqual(got[1], state) {
		t.Fatalf("carried %+v; want two states, the second %+v", got, state)
	}
	if other.Stats()["carry_out"] != 0 || owner.Stats()["carry_out"] != 0 {
		t.Fatal("a node that stands by for nothing asked for carried state")
	}
}

func FuzzDecodeOwnerState(f *testing.F) {
	seed, _ := encodeOwnerState(OwnerState{
		Drains: []Drain{{Node: "n02", Quiesced: true}, {VIPA: vipaA, Port: 80, Node: "n03"}},
		Health: []RowHealth{{VIPA: vipaA, Port: 80, Node: "n03", TSR: 7, Unhealthy: true}},
	})
	empty, _ := encodeOwnerState(OwnerState{})
	f.Add(seed)
	f.Add(empty)
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := decodeOwnerState(body)
		if err != nil {
			return
		}
		if got, left := encodeOwnerState(s); left != 0 || !bytes.Equal(got, body) {
			t.Fatalf("accepted a non-canonical state:\n in %x\nout %x", body, got)
		}
	})
}

// TestCarryOlderOwner: a routing node that predates carried state drops
// the request as malformed (drop_decode there); the standby counts the
// failure and backs off instead of asking every period, and both keep
// syncing reports.
func TestCarryOlderOwner(t *testing.T) {
	o := fleetOpts{profile: vipa.ProfileFast}
	called := make(chan struct{}, 1)
	owner := startNodeWith(t, o.config("n00", testIP(0), 0, nil), func(n *tnode) {
		n.cfg.hooks.noCarry = true
		n.OwnerState = func() OwnerState { return OwnerState{Drains: []Drain{{Node: "n01", Quiesced: true}}} }
	})
	join := []string{owner.BindAddr().String()}
	standby := startNodeWith(t, o.config("n01", testIP(1), 0, join), func(n *tnode) {
		n.OnOwnerState = func(string, OwnerState) {
			select {
			case called <- struct{}{}:
			default:
			}
		}
	})
	nodes := []*tnode{owner, standby}
	t.Cleanup(func() { stopAll(nodes) })
	owner.SetDefinitions([]*vipa.Definition{def(vipaA.String(), "n00", ports("8080"))})
	standby.SetVIPADyn(VIPADyn{Ranks: map[netip.Addr]int{vipaA: 100}})
	waitFor(t, 20*time.Second, "two failed asks", func() bool { return standby.Stats()["carry_fail"] >= 2 })
	if owner.Stats()["drop_decode"] < 2 || owner.Stats()["carry_in"] != 0 {
		t.Fatalf("the older owner's stats %v", owner.Stats())
	}
	// Backoff: 2 s, then 4 s, ... so 6 s see at most 3 more asks, where
	// asking every period would make 6.
	asked := standby.Stats()["carry_out"]
	time.Sleep(6 * time.Second)
	if n := standby.Stats()["carry_out"] - asked; n > 3 {
		t.Fatalf("%d asks in 6 s of an owner that drops them", n)
	}
	select {
	case <-called:
		t.Fatal("state handed on from an owner that dropped the request")
	default:
	}
	standby.set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	waitFor(t, 10*time.Second, "the routing node's row of the standby", func() bool { return len(owner.dpt()["n01"]) == 1 })
}

// channelCounter counts the state channel streams an agent opens: the
// dialed streams whose first bytes are the channel's hello.
type channelCounter struct {
	memberlist.NodeAwareTransport
	streams atomic.Int64
}

func (t *channelCounter) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, d)
	if err != nil {
		return c, err
	}
	return &firstWrite{Conn: c, t: t}, nil
}

type firstWrite struct {
	net.Conn
	t    *channelCounter
	seen atomic.Bool
}

func (c *firstWrite) Write(b []byte) (int, error) {
	if !c.seen.Swap(true) && bytes.HasPrefix(b, []byte(channelMagic)) {
		c.t.streams.Add(1)
	}
	return c.Conn.Write(b)
}

// carryPair starts a routing node of vipaA, whose state changes with
// every call of its OwnerState when changing is set, and a standby of
// vipaA whose state channel streams are counted; owner runs before the
// routing node starts.
func carryPair(t *testing.T, owner func(n *tnode)) (o, s *tnode, streams *channelCounter, got func() int) {
	t.Helper()
	opts := fleetOpts{profile: vipa.ProfileFast}
	streams = &channelCounter{}
	var mu sync.Mutex
	n := 0
	o = startNodeWith(t, opts.config("n00", testIP(0), 0, nil), owner)
	cfg := opts.config("n01", testIP(1), 0, []string{o.BindAddr().String()})
	cfg.hooks.wrapTransport = func(tr memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		streams.NodeAwareTransport = tr
		return streams
	}
	s = startNodeWith(t, cfg, func(n2 *tnode) {
		n2.OnOwnerState = func(string, OwnerState) {
			mu.Lock()
			n++
			mu.Unlock()
		}
	})
	t.Cleanup(func() { stopAll([]*tnode{o, s}) })
	o.SetDefinitions([]*vipa.Definition{def(vipaA.String(), "n00", ports("8080"))})
	s.SetVIPADyn(VIPADyn{Ranks: map[netip.Addr]int{vipaA: 100}})
	return o, s, streams, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// changingState is an OwnerState that differs at every call.
func changingState() func() OwnerState {
	var mu sync.Mutex
	tsr := 0
	return func() OwnerState {
		mu.Lock()
		defer mu.Unlock()
		tsr = tsr%99 + 1
		return OwnerState{Health: []RowHealth{{VIPA: vipaA, Port: 8080, Node: "n02", TSR: tsr}}}
	}
}

// TestCarryOneStream: a standby asks its routing node every period on one
// stream, not a stream per ask, and gets every change on it.
func TestCarryOneStream(t *testing.T) {
	o, s, streams, got := carryPair(t, func(n *tnode) { n.OwnerState = changingState() })
	waitFor(t, 20*time.Second, "the first carried state", func() bool { return got() >= 1 })
	asked, opened, synced, states := s.Stats()["carry_out"], streams.streams.Load(), s.Stats()["sync_out"], got()
	waitFor(t, 20*time.Second, "five more asks", func() bool { return s.Stats()["carry_out"] >= asked+5 })
	carryStreams := streams.streams.Load() - opened - int64(s.Stats()["sync_out"]-synced)
	if carryStreams > 1 {
		t.Fatalf("%d state channel streams opened for %d asks", carryStreams, s.Stats()["carry_out"]-asked)
	}
	if got() < states+4 || s.Stats()["carry_fail"] != 0 {
		t.Fatalf("%d states over the stream for 5 asks, %d failures", got()-states, s.Stats()["carry_fail"])
	}
	if n := o.carryStreams.Load(); n != 1 {
		t.Fatalf("the routing node holds %d carry streams, want 1", n)
	}
}

// TestCarryOneShotOwner: a routing node that answers one ask per stream
// (before carry streams) still gets asked every period, a stream each,
// with no failure counted and no backoff.
func TestCarryOneShotOwner(t *testing.T) {
	_, s, _, got := carryPair(t, func(n *tnode) {
		n.cfg.hooks.carryOneShot = true
		n.OwnerState = changingState()
	})
	waitFor(t, 20*time.Second, "the first carried state", func() bool { return got() >= 1 })
	states := got()
	start := time.Now()
	waitFor(t, 20*time.Second, "four more states", func() bool { return got() >= states+4 })
	if st := s.Stats(); st["carry_fail"] != 0 || time.Since(start) > 8*time.Second {
		t.Fatalf("four states in %v with %d failures: want one a period", time.Since(start), st["carry_fail"])
	}
}

// TestCarryBadAnswer: an answer that fails to verify is dropped and
// counted, its stream closed; the next ask, after the backoff, opens
// another and carries on.
func TestCarryBadAnswer(t *testing.T) {
	var answers atomic.Int64
	_, s, _, got := carryPair(t, func(n *tnode) {
		n.OwnerState = changingState()
		n.cfg.hooks.carryAnswer = func(a *carryAnswer) {
			if answers.Add(1)%3 == 0 {
				a.hash++
			}
		}
	})
	waitFor(t, 30*time.Second, "two answers dropped", func() bool { return s.Stats()["drop_hash"] >= 2 })
	states := got()
	waitFor(t, 20*time.Second, "states after them", func() bool { return got() >= states+2 })
	st := s.Stats()
	if st["carry_fail"] < 2 || st["carry_stream"] < 3 {
		t.Fatalf("stats %v: want each bad answer a failure and its stream replaced", st)
	}
}
