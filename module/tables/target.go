package tables

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// State of a DPT row.
type State uint8

const (
	// Active rows receive new connections.
	Active State = iota
	// Quiesced rows keep their connections but receive no new ones.
	Quiesced
	// Standby rows are hotstandby rows not in use: not the row new
	// connections go to, holding none, and no client's timed affinity.
	// Only Rows and WhatIf report it: a row is never set to Standby.
	Standby
)

// String returns the name used by the admin API.
func (s State) String() string {
	switch s {
	case Active:
		return string(vipa.StateActive)
	case Quiesced:
		return string(vipa.StateQuiesced)
	case Standby:
		return string(vipa.StateStandby)
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
	st, err := vipa.ParseRowState(name)
	if err != nil {
		return 0, fmt.Errorf("tables: %w", err)
	}
	switch st {
	case vipa.StateQuiesced:
		return Quiesced, nil
	case vipa.StateStandby:
		return Standby, nil
	}
	return Active, nil
}

// Row is a DPT row as reporters supply it and as Rows returns it.
type Row struct {
	VIPA    netip.Addr
	Port    uint16
	Node    string
	Address netip.AddrPort // where the routing node dials the target
	Ready   int            // listening sockets; Replace leaves out a row with Ready <= 0
	Weight  int            // <= 0 means 1; Rows gives the weight the distmethod uses
	State   State          // Replace takes Standby as Active

	// Filled in by Rows, ignored by Replace: the row's responsiveness (0-100),
	// health, and weight × TSR × slow-start ramp as the distmethod sees it.
	TSR             int
	Health          Health
	EffectiveWeight float64

	ActiveConns int64  // filled in by Rows, ignored by Replace
	TotalConns  uint64 // filled in by Rows, ignored by Replace
	// Bytes relayed by the row's connections that have ended; filled in
	// by Rows, ignored by Replace.
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

	attrs  atomic.Pointer[attrs]
	stats  *stats
	health *health
	weight atomic.Int32 // the weight its group's distmethod uses
	eff    atomic.Int32 // effective weight in hundredths, as of the last refresh
}

// attrs is replaced as a whole so that readers never see half an update.
type attrs struct {
	ready  int
	weight int
	state  State
}

func newTarget(r Row, st *stats) *Target {
	if st == nil {
		st = newStats()
	}
	t := &Target{VIPA: r.VIPA, Port: r.Port, Node: r.Node, Address: r.Address, stats: st,
		health: newHealth(time.Now().UnixNano())}
	t.attrs.Store(attrsOf(r))
	t.weight.Store(int32(max(r.Weight, 1)))
	t.eff.Store(int32(max(r.Weight, 1)) * 100)
	return t
}

func attrsOf(r Row) *attrs {
	st := r.State
	if st == Standby {
		st = Active
	}
	return &attrs{ready: r.Ready, weight: min(max(r.Weight, 1), vipa.MaxWeight), state: st}
}

// Ready is the number of application sockets listening for this row.
func (t *Target) Ready() int { return t.attrs.Load().ready }

// Weight is the weight the row's distmethod uses: the destination's
// configured weight, or for targetweight the one the target reports.
func (t *Target) Weight() int { return int(t.weight.Load()) }

// ReportedWeight is the weight the target reports for itself, at least 1.
func (t *Target) ReportedWeight() int { return t.attrs.Load().weight }

// EffectiveWeight is the weight the distmethod gives the row: configured
// or reported weight × TSR/100 × slow-start ramp, as of the last refresh.
func (t *Target) EffectiveWeight() float64 { return float64(t.eff.Load()) / 100 }

// State is the row's state.
func (t *Target) State() State { return t.attrs.Load().state }

// ActiveConns is the number of CRT entries routed to this row right now.
func (t *Target) ActiveConns() int64 { return t.stats.active() }

// TotalConns is the number of connections ever routed to this row.
func (t *Target) TotalConns() uint64 { return t.stats.total() }

// Row returns the row's current values and counters.
func (t *Target) Row() Row {
	a := t.attrs.Load()
	toTarget, toClient := t.stats.bytes()
	return Row{
		VIPA:            t.VIPA,
		Port:            t.Port,
		Node:            t.Node,
		Address:         t.Address,
		Ready:           a.ready,
		Weight:          int(t.weight.Load()),
		State:           a.state,
		TSR:             t.TSR(),
		Health:          t.Health(),
		EffectiveWeight: t.EffectiveWeight(),
		ActiveConns:     t.stats.active(),
		TotalConns:      t.stats.total(),
		BytesToTarget:   toTarget,
		BytesToClient:   toClient,
	}
}
