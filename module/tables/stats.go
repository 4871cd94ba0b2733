package tables

import (
	"math/bits"
	"runtime"
	"sync/atomic"
)

// stats counts one row's connections; every Target of the row shares it.
//
// A connection counts on one stripe: the one of the processor that
// inserted its CRT entry. Connections routed on different cores then write
// different cache lines, and the counts are exact as sums over the
// stripes, whichever stripe each one counted on.
// The active count is also kept roughly in approx, a line that changes
// once every flushAt connections of a stripe: max_conns needs no more
// until a row gets near its bound, and leastconn and weightedactive read
// the exact counts only when the rough ones leave the choice open
// (rough.go).
type stats struct {
	stripes []stripe // len is a power of two
	_       [falseShare - 24]byte
	approx  atomic.Int64         // sum of the stripes' published: within slack of active
	_       [falseShare - 8]byte // approx changes without moving the fields above
}

// stripe is one core's part of a row's counts.
type stripe struct {
	active    atomic.Int64
	published atomic.Int64 // the part of active that approx includes
	total     atomic.Uint64
	toTarget  atomic.Int64 // bytes of ended connections
	toClient  atomic.Int64
	// counted (hotstandby's) affinity records whose target is the row:
	// moved where a record is made or changes target, and by the sweep
	// that takes it out
	affinities atomic.Int64
	_          [falseShare - 48]byte
}

// falseShare is how far apart data written by different cores is kept. A
// cache line is 64 bytes, but x86 processors also fetch a line's 128-byte
// pair (the adjacent-line prefetcher): two cores writing the two halves of
// a pair slow each other down as if they shared one line. On the 2-core
// AMD machine this was measured on, two home CRT shards 64 bytes apart
// cost hotstandby ~600 ns of CPU per connection instead of ~320.
const falseShare = 128

// stripeCount is a power of two at least GOMAXPROCS at start, at most 16:
// an exact count reads every stripe.
var stripeCount = min(1<<bits.Len(uint(runtime.GOMAXPROCS(0)-1)), 16)

// flushAt is how far a stripe's active count moves before approx follows.
const flushAt = 8

// slack bounds |active - approx|: each stripe is within flushAt of what it
// published, and as much again may be on its way to approx.
func (st *stats) slack() int64 { return int64(2 * flushAt * len(st.stripes)) }

func newStats() *stats { return &stats{stripes: make([]stripe, stripeCount)} }

// started counts a connection inserted on processor i.
func (st *stats) started(i uint8) {
	st.move(i, 1).total.Add(1)
}

// ended counts the end of a connection inserted on processor i that
// relayed toTarget and toClient bytes.
func (st *stats) ended(i uint8, toTarget, toClient int64) {
	s := st.move(i, -1)
	s.toTarget.Add(toTarget)
	s.toClient.Add(toClient)
}

// move adds d to the active count of processor i's stripe, and returns
// the stripe. The stripe's count is published to approx once it is
// flushAt away from what approx has of it.
func (st *stats) move(i uint8, d int64) *stripe {
	s := &st.stripes[int(i)&(len(st.stripes)-1)]
	v := s.active.Add(d)
	if p := s.published.Load(); v-p >= flushAt || p-v >= flushAt {
		st.publish(s, p)
	}
	return s
}

// publish brings approx up to stripe s's count, of which p is what approx
// has. It reads the count afresh: the count a move returned may be stale
// by now (its goroutine was preempted meanwhile while others moved and
// published), and publishing that could leave approx further than slack
// from the exact count until the stripe's next move.
func (st *stats) publish(s *stripe, p int64) {
	if v := s.active.Load(); v != p && s.published.CompareAndSwap(p, v) {
		st.approx.Add(v - p)
	}
}

// below reports whether the active count is below n, reading the stripes
// only when approx is too close to n to tell.
func (st *stats) below(n int64) bool {
	a, d := st.approx.Load(), st.slack()
	if a+d < n {
		return true
	}
	if a-d >= n {
		return false
	}
	return st.active() < n
}

func (st *stats) active() int64 {
	var n int64
	for i := range st.stripes {
		n += st.stripes[i].active.Load()
	}
	return n
}

func (st *stats) total() uint64 {
	var n uint64
	for i := range st.stripes {
		n += st.stripes[i].total.Load()
	}
	return n
}

// affine adds d to the count of affinity records pointing at the row.
func (st *stats) affine(d int64) {
	st.stripes[proc()&(len(st.stripes)-1)].affinities.Add(d)
}

// affined is the number of affinity records pointing at the row: in
// force, or expired since the last sweep.
func (st *stats) affined() int64 {
	var n int64
	for i := range st.stripes {
		n += st.stripes[i].affinities.Load()
	}
	return n
}

// bytes are the bytes relayed by the row's ended connections.
func (st *stats) bytes() (toTarget, toClient int64) {
	for i := range st.stripes {
		toTarget += st.stripes[i].toTarget.Load()
		toClient += st.stripes[i].toClient.Load()
	}
	return toTarget, toClient
}
