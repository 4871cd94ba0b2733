package tables

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
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
	Why    Why   // why it went to Target
	linked bool  // in a shard; only the owner reads it outside the lock
	affine bool  // counted in aff by Candidates.Commit
	stripe uint8 // the processor that inserted it: its row counts it on that stripe
	shard  uint16
	slot   int32 // index in its shard's slots
	Target *Target
	Since  int64 // unix nanoseconds; Insert sets it when zero

	ToTarget atomic.Int64 // bytes copied client -> target
	ToClient atomic.Int64 // bytes copied target -> client

	aff *affinity // the client's affinity record while affine
}

// CRT is the connection routing table: shards of entries, safe for
// concurrent use. Use NewCRT to make one.
type CRT struct {
	shards []shard
	pool   sync.Pool
	aff    affinityTable

	failedMu sync.Mutex
	failed   map[*Entry]string // the last failed dial's node, of entries with Why.Failed > 0
}

// homeShards is how many shards each processor inserts into: its home
// shards, picked by a hash of the client. The connections a processor
// routes go to its own shards, whose locks stay in that core's cache as
// they come and go, and no one shard takes them all.
const homeShards = 16

// shard holds its entries in slots, where they stay until removed: an
// insert or a removal touches no other entry, and the entries hold no
// pointers to one another for the GC to follow. It is spread over
// falseShare bytes, so the home shards of two cores never share a line
// or a line pair.
type shard struct {
	mu    sync.Mutex
	slots []*Entry // nil where free
	free  []int32  // the free slots below len(slots)
	n     int32    // entries
	_     [falseShare - 60]byte
}

// NewCRT returns an empty table with enough shards for this machine.
func NewCRT() *CRT {
	// homeShards per P (a GOMAXPROCS raised later shares them)
	b := bits.Len(uint(runtime.GOMAXPROCS(0)*homeShards - 1))
	b = min(max(b, 6), 12)
	c := &CRT{shards: make([]shard, 1<<b)}
	c.pool.New = func() any { return new(Entry) }
	return c
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
		e.Since = Now().UnixNano()
	}
	p := proc()
	e.stripe = uint8(p)
	e.shard = uint16((p*homeShards + homeOf(e.Client)) & (len(c.shards) - 1))
	e.Target.stats.started(e.stripe)
	s := &c.shards[e.shard]
	s.mu.Lock()
	s.add(e)
	e.linked = true
	s.n++
	s.mu.Unlock()
}

// homeOf picks one of a processor's home shards for a client.
func homeOf(client netip.AddrPort) int {
	a := client.Addr().As16()
	x := binary.LittleEndian.Uint64(a[8:]) ^ uint64(client.Port())<<32
	x *= 0x9e3779b97f4a7c15
	return int(x >> 60)
}

// Move re-targets an entry in the table to t: its dial failed and the
// connection retries there, for the reason why; last is the node whose
// dial failed last, which Explain names. The old target's active count
// drops and t's rises; t counts one more total connection, and the old
// target keeps the one it counted (totals only grow).
func (c *CRT) Move(e *Entry, t *Target, why Why, last string) {
	s := &c.shards[e.shard]
	t.stats.started(e.stripe)
	s.mu.Lock()
	old := e.Target
	e.Target, e.Why = t, why
	s.mu.Unlock()
	if why.Failed > 0 {
		c.failedMu.Lock()
		if c.failed == nil {
			c.failed = make(map[*Entry]string)
		}
		c.failed[e] = last
		c.failedMu.Unlock()
	}
	old.stats.move(e.stripe, -1)
}

// Remove takes the entry out, drops e.Target's active count (claims 11
// and 17) and the client's affinity count, and adds the entry's bytes to
// the target's totals. Removing an
// entry that is not in the table is a no-op, so a second Remove is
// harmless; a Remove after Release is not.
func (c *CRT) Remove(e *Entry) {
	if e.affine {
		c.aff.release(e.aff, monoNow)
		e.affine, e.aff = false, nil
	}
	if !e.linked {
		return
	}
	s := &c.shards[e.shard]
	s.mu.Lock()
	s.remove(e)
	e.linked = false
	s.n--
	s.mu.Unlock()
	if e.Why.Failed > 0 {
		c.failedMu.Lock()
		delete(c.failed, e)
		c.failedMu.Unlock()
	}
	e.Target.stats.ended(e.stripe, e.ToTarget.Load(), e.ToClient.Load())
}

// Release zeroes the entry and gives it back for reuse, removing it first
// if the caller has not. The caller must not touch e afterwards.
func (c *CRT) Release(e *Entry) {
	c.Remove(e)
	*e = Entry{}
	c.pool.Put(e)
}

// Len is the number of entries. It takes each shard's lock in turn
// (the connection path counts entries under the lock it holds anyway).
func (c *CRT) Len() int {
	var n int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += int64(s.n)
		s.mu.Unlock()
	}
	return int(n)
}

// Explain is e.Why as text, naming the node of its last failed dial. Call
// it only from Range's fn, which keeps e in the table meanwhile.
func (c *CRT) Explain(e *Entry) string {
	last := ""
	if e.Why.Failed > 0 {
		c.failedMu.Lock()
		last = c.failed[e]
		c.failedMu.Unlock()
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
	for i := range c.shards {
		if !c.shards[i].walk(fn) {
			return
		}
	}
}

// walk visits the shard's slots in batches, unlocking between them. An
// entry stays in its slot while it is in the table, so one that is there
// throughout is visited once.
func (s *shard) walk(fn func(e *Entry) bool) bool {
	s.mu.Lock()
	for i := 0; i < len(s.slots); {
		for end := min(i+rangeBatch, len(s.slots)); i < end; i++ {
			if e := s.slots[i]; e != nil && !fn(e) {
				s.mu.Unlock()
				return false
			}
		}
		if i < len(s.slots) {
			s.mu.Unlock()
			runtime.Gosched()
			s.mu.Lock()
		}
	}
	s.mu.Unlock()
	return true
}

// shrinkAt is the slot count above which an emptied shard lets its slots go.
const shrinkAt = 1024

func (s *shard) add(e *Entry) {
	if n := len(s.free); n > 0 {
		e.slot, s.free = s.free[n-1], s.free[:n-1]
		s.slots[e.slot] = e
		return
	}
	e.slot = int32(len(s.slots))
	s.slots = append(s.slots, e)
}

// remove frees e's slot; the last slot is dropped rather than listed free,
// and an emptied shard starts over.
func (s *shard) remove(e *Entry) {
	switch {
	case s.n == 1:
		if cap(s.slots) > shrinkAt {
			s.slots, s.free = nil, nil
		} else {
			clear(s.slots)
			s.slots, s.free = s.slots[:0], s.free[:0]
		}
	case int(e.slot) == len(s.slots)-1:
		s.slots[e.slot] = nil
		s.slots = s.slots[:e.slot]
	default:
		s.slots[e.slot] = nil
		s.free = append(s.free, e.slot)
	}
}
