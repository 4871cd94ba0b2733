package tables

import (
	"math/bits"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Entry is one CRT row: one live routed connection.
//
// One goroutine owns an entry from Acquire to Release. It fills Client,
// VIPA, Port, Target (and optionally Since) before Insert and changes none of
// them while the entry is in the table, except Target through Move.
// ToTarget and ToClient may be updated at any time.
type Entry struct {
	Client netip.AddrPort
	VIPA   netip.Addr
	Port   uint16
	Why    Why  // why it went to Target
	linked bool // in a shard list; only the owner reads it outside the lock
	marker bool // a Range bookmark, not a connection
	affine bool // counted in the client's affinity by Candidates.Commit
	Target *Target
	Since  int64 // unix nanoseconds; Insert sets it when zero

	ToTarget atomic.Int64 // bytes copied client -> target
	ToClient atomic.Int64 // bytes copied target -> client

	prev, next *Entry
}

// CRT is the connection routing table: sharded lists of entries, safe for
// concurrent use. Use NewCRT to make one.
type CRT struct {
	shards []shard
	shift  uint // 64 - log2(len(shards))
	pool   sync.Pool
	aff    affinityTable
}

// shard is padded to a cache line so neighbouring locks do not contend.
type shard struct {
	mu     sync.Mutex
	head   *Entry
	n      atomic.Int64
	failed map[*Entry]string // the last failed dial's node, of entries with Why.Failed > 0
	_      [32]byte
}

// NewCRT returns an empty table with enough shards for this machine.
func NewCRT() *CRT {
	// 16 shards per P keeps two connections landing on one lock rare.
	b := bits.Len(uint(runtime.GOMAXPROCS(0)*16 - 1))
	b = min(max(b, 6), 12)
	c := &CRT{shards: make([]shard, 1<<b), shift: uint(64 - b)}
	c.pool.New = func() any { return new(Entry) }
	return c
}

// shardOf spreads entries by address: the heap does not move objects, and
// it costs nothing to store.
func (c *CRT) shardOf(e *Entry) *shard {
	h := uint64(uintptr(unsafe.Pointer(e))) * 0x9e3779b97f4a7c15
	return &c.shards[h>>c.shift]
}

// Acquire returns a zeroed entry, reused from earlier Releases when it can.
func (c *CRT) Acquire() *Entry { return c.pool.Get().(*Entry) }

// Insert adds the entry and counts it on e.Target as one active and one
// more total connection (claim 1's routing table entry). Inserting an entry
// that is already in the table panics.
func (c *CRT) Insert(e *Entry) {
	if e.linked {
		panic("tables: CRT entry inserted twice")
	}
	if e.Since == 0 {
		e.Since = time.Now().UnixNano()
	}
	e.Target.stats.active.Add(1)
	e.Target.stats.total.Add(1)
	s := c.shardOf(e)
	s.mu.Lock()
	s.pushFront(e)
	e.linked = true
	s.n.Add(1)
	s.mu.Unlock()
}

// Move re-targets an entry in the table to t: its dial failed and the
// connection retries there, for the reason why; last is the node whose
// dial failed last, which Explain names. The old target's active count
// drops and t's rises; t counts one more total connection, and the old
// target keeps the one it counted (totals only grow).
func (c *CRT) Move(e *Entry, t *Target, why Why, last string) {
	s := c.shardOf(e)
	t.stats.active.Add(1)
	t.stats.total.Add(1)
	s.mu.Lock()
	old := e.Target
	e.Target, e.Why = t, why
	if why.Failed > 0 {
		if s.failed == nil {
			s.failed = make(map[*Entry]string)
		}
		s.failed[e] = last
	}
	s.mu.Unlock()
	old.stats.active.Add(-1)
}

// Remove takes the entry out, drops e.Target's active count (claims 11
// and 17) and the client's affinity count, and adds the entry's bytes to
// the target's totals. Removing an
// entry that is not in the table is a no-op, so a second Remove is
// harmless; a Remove after Release is not.
func (c *CRT) Remove(e *Entry) {
	if e.affine {
		c.aff.release(affKeyOf(e.VIPA, e.Port, e.Client.Addr()), monoNow())
		e.affine = false
	}
	if !e.linked {
		return
	}
	s := c.shardOf(e)
	s.mu.Lock()
	s.unlink(e)
	e.linked = false
	s.n.Add(-1)
	if e.Why.Failed > 0 {
		delete(s.failed, e)
	}
	s.mu.Unlock()
	st := e.Target.stats
	st.active.Add(-1)
	st.toTarget.Add(e.ToTarget.Load())
	st.toClient.Add(e.ToClient.Load())
}

// Release zeroes the entry and gives it back for reuse, removing it first
// if the caller has not. The caller must not touch e afterwards.
func (c *CRT) Release(e *Entry) {
	c.Remove(e)
	*e = Entry{}
	c.pool.Put(e)
}

// Len is the number of entries.
func (c *CRT) Len() int {
	var n int64
	for i := range c.shards {
		n += c.shards[i].n.Load()
	}
	return int(n)
}

// Explain is e.Why as text, naming the node of its last failed dial. Call
// it only from Range's fn, which holds the lock that guards that name.
func (c *CRT) Explain(e *Entry) string {
	last := ""
	if e.Why.Failed > 0 {
		last = c.shardOf(e).failed[e]
	}
	return e.Why.Text(last)
}

// rangeBatch bounds how long Range holds one shard's lock.
const rangeBatch = 128

// Range calls fn for every entry in the table when Range started that is
// still there when its turn comes, until fn returns false; entries inserted
// meanwhile may or may not be seen. fn runs with the entry's shard locked,
// so the entry cannot be removed or released under it: it must be quick,
// must not keep e after returning, and must not call Insert, Remove or
// Release.
func (c *CRT) Range(fn func(e *Entry) bool) {
	m := &Entry{marker: true}
	for i := range c.shards {
		if !c.shards[i].walk(m, fn) {
			return
		}
	}
}

// walk visits the shard in batches. Between batches it leaves the marker in
// the list, so removals made meanwhile cannot strand it.
func (s *shard) walk(m *Entry, fn func(e *Entry) bool) bool {
	s.mu.Lock()
	e := s.head
	for {
		for n := 0; n < rangeBatch; n++ {
			if e == nil {
				s.mu.Unlock()
				return true
			}
			if !e.marker && !fn(e) {
				s.mu.Unlock()
				return false
			}
			e = e.next
		}
		if e == nil {
			s.mu.Unlock()
			return true
		}
		s.linkBefore(m, e)
		s.mu.Unlock()
		runtime.Gosched()
		s.mu.Lock()
		e = m.next
		s.unlink(m)
	}
}

func (s *shard) pushFront(e *Entry) {
	e.prev = nil
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
}

func (s *shard) linkBefore(e, at *Entry) {
	e.next = at
	e.prev = at.prev
	if at.prev != nil {
		at.prev.next = e
	} else {
		s.head = e
	}
	at.prev = e
}

func (s *shard) unlink(e *Entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.prev, e.next = nil, nil
}
