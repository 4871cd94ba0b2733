package tables

// Distmethod chooses where a new connection starts among a Group's Active
// targets (claim 12). The caller tries Targets()[(start+k)%n] for k = 0, 1, …
// until a dial succeeds, so a method only has to pick the first candidate.
// Start must be safe for concurrent use and must not allocate.
type Distmethod interface {
	// Start returns an index into g.Targets(), or 0 when g has no targets.
	Start(g *Group) int
}

// NewDistmethod returns the method configured by name; "" is roundrobin.
func NewDistmethod(name string) (Distmethod, error) {
	if err := CheckDistmethod(name); err != nil {
		return nil, err
	}
	return RoundRobin{}, nil
}

// RoundRobin hands successive connections of one (VIPA, port) to its targets
// in turn. Its counter belongs to the (VIPA, port), not to a snapshot, so
// reports arriving between connections do not restart the rotation.
type RoundRobin struct{}

// Start implements Distmethod.
func (RoundRobin) Start(g *Group) int {
	n := g.Len()
	if n == 0 {
		return 0
	}
	return int((g.st.rr.Add(1) - 1) % uint64(n))
}

var _ Distmethod = RoundRobin{}
