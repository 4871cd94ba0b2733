package tables

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// State of a DPT row.
type State uint8

const (
	// Active rows receive new connections.
	Active State = iota
	// Quiesced rows keep their connections but receive no new ones.
	Quiesced
)

// String returns the name used by the admin API.
func (s State) String() string {
	switch s {
	case Active:
		return "active"
	case Quiesced:
		return "quiesced"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseState is the inverse of State.String.
func ParseState(name string) (State, error) {
	switch name {
	case "active":
		return Active, nil
	case "quiesced":
		return Quiesced, nil
	}
	return 0, fmt.Errorf("tables: unknown state %q", name)
}

// Row is a DPT row as reporters supply it and as Rows returns it.
type Row struct {
	VIPA    netip.Addr
	Port    uint16
	Node    string
	Address netip.AddrPort // where the routing node dials the target
	Ready   int            // listening sockets; Set with Ready <= 0 deletes the row
	Weight  int            // <= 0 means 1
	State   State

	ActiveConns int64  // filled in by Rows, ignored by Set
	TotalConns  uint64 // filled in by Rows, ignored by Set
	// Bytes relayed by the row's connections that have ended; filled in
	// by Rows, ignored by Set.
	BytesToTarget, BytesToClient int64
}

// Target is one DPT row: a target node that has at least one application
// listener on (VIPA, Port).
//
// The pointer stays the same while the row lives, and stays valid after the
// row leaves the DPT, so a connection can keep counting on the Target it was
// routed to. Ready, Weight and State are live values. Address is fixed: a row
// whose address changes gets a new Target that shares the old one's counters,
// so connections dialed to the old address keep showing it.
type Target struct {
	VIPA    netip.Addr
	Port    uint16
	Node    string
	Address netip.AddrPort

	attrs atomic.Pointer[attrs]
	stats *stats
}

// attrs is replaced as a whole so that readers never see half an update.
type attrs struct {
	ready  int
	weight int
	state  State
}

// stats is shared by every Target of one row and padded to a cache line so
// that busy targets do not slow each other down.
type stats struct {
	active   atomic.Int64
	total    atomic.Uint64
	toTarget atomic.Int64 // bytes of ended connections
	toClient atomic.Int64
	_        [32]byte
}

func newTarget(r Row, st *stats) *Target {
	if st == nil {
		st = new(stats)
	}
	t := &Target{VIPA: r.VIPA, Port: r.Port, Node: r.Node, Address: r.Address, stats: st}
	t.attrs.Store(attrsOf(r))
	return t
}

func attrsOf(r Row) *attrs {
	return &attrs{ready: r.Ready, weight: max(r.Weight, 1), state: r.State}
}

// Ready is the number of application sockets listening for this row.
func (t *Target) Ready() int { return t.attrs.Load().ready }

// Weight is the row's weight, at least 1.
func (t *Target) Weight() int { return t.attrs.Load().weight }

// State is the row's state.
func (t *Target) State() State { return t.attrs.Load().state }

// ActiveConns is the number of CRT entries routed to this row right now.
func (t *Target) ActiveConns() int64 { return t.stats.active.Load() }

// TotalConns is the number of connections ever routed to this row.
func (t *Target) TotalConns() uint64 { return t.stats.total.Load() }

// Row returns the row's current values and counters.
func (t *Target) Row() Row {
	a := t.attrs.Load()
	return Row{
		VIPA:          t.VIPA,
		Port:          t.Port,
		Node:          t.Node,
		Address:       t.Address,
		Ready:         a.ready,
		Weight:        a.weight,
		State:         a.state,
		ActiveConns:   t.stats.active.Load(),
		TotalConns:    t.stats.total.Load(),
		BytesToTarget: t.stats.toTarget.Load(),
		BytesToClient: t.stats.toClient.Load(),
	}
}
