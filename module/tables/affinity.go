package tables

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Affinity is one client's timed affinity as GET /vipa/affinity lists it.
type Affinity struct {
	Client      netip.Addr
	VIPA        netip.Addr
	Port        uint16
	Node        string
	ActiveConns int
	Expires     time.Time // zero while connections are open
}

// affKey: affinities are per client IP and (VIPA, port). As16 maps IPv4,
// so a v4-mapped client or VIPA finds the same affinity. A record holds
// its key in atomic words: the client's two and the (VIPA, port)'s
// interned pointer, which keeps the record in one cache line.
type affKey struct {
	c0, c1 uint64 // the client's As16
	g      *groupKey
}

// groupKey is a (VIPA, port) interned by groupKeyOf: one pointer per
// pair for the life of the process, so affinity records compare pointers.
type groupKey struct {
	vipa netip.Addr // unmapped, no zone
	port uint16
	h    uint64 // hash of vipa and port
}

var groupKeys sync.Map // key -> *groupKey

func groupKeyOf(vipa netip.Addr, port uint16) *groupKey {
	v := netip.AddrFrom16(vipa.As16()).Unmap()
	k := key{v, port}
	if g, ok := groupKeys.Load(k); ok {
		return g.(*groupKey)
	}
	a := v.As16()
	le := binary.LittleEndian
	g, _ := groupKeys.LoadOrStore(k, &groupKey{vipa: v, port: port,
		h: mix(le.Uint64(a[8:]) ^ uint64(port)<<32 ^ mix(le.Uint64(a[:8])))})
	return g.(*groupKey)
}

func affKeyOf(vipa netip.Addr, port uint16, client netip.Addr) affKey {
	return clientKey(groupKeyOf(vipa, port), client)
}

func clientKey(g *groupKey, client netip.Addr) affKey {
	c := client.As16()
	return affKey{binary.LittleEndian.Uint64(c[:8]), binary.LittleEndian.Uint64(c[8:]), g}
}

// affKey is the affinity key of client in g.
func (g *Group) affKey(client netip.Addr) affKey { return clientKey(g.akey, client) }

func (k *affKey) hash() uint64 {
	return mix(k.c1 ^ mix(k.c0^k.g.h))
}

// addrs is the key as addresses.
func (k *affKey) addrs() (client, vipa netip.Addr, port uint16) {
	var c [16]byte
	le := binary.LittleEndian
	le.PutUint64(c[:8], k.c0)
	le.PutUint64(c[8:], k.c1)
	return netip.AddrFrom16(c).Unmap(), k.g.vipa, k.g.port
}

// affinity is one client's record. The connection path reads and counts
// it without locks: every field is atomic. A swept record may be reused
// for another client while a reader still holds it; its generation tells
// the reader apart.
type affinity struct {
	// state packs the count of active connections, a count of commits
	// (so that sweep tells a record that was used meanwhile from one that
	// was not) and a generation, odd while the record is swept.
	state   atomic.Uint64
	expires atomic.Int64 // monotonic clock (mono); in force only once active is 0
	// ttl is the affinity's duration, negated when its rows count the
	// record (stats.affine): the sign is set when the record is made and
	// kept while it lives, so an increment and its decrement always pair.
	ttl    atomic.Int64
	target atomic.Pointer[Target] // its Node is the affinity's
	h      atomic.Uint64          // key's hash
	c0, c1 atomic.Uint64          // key: client
	g      atomic.Pointer[groupKey]
	// 64 bytes: a lookup, a commit and a release each touch one line.
}

// The fields of affinity.state.
const (
	affActiveMask = 1<<24 - 1
	affCommitOne  = 1 << 24
	affCommitMask = 0xffff << 24
	affGenShift   = 40
)

func affActive(s uint64) int32 { return int32(s & affActiveMask) }
func affGen(s uint64) uint32   { return uint32(s >> affGenShift) }

// is reports whether v's key is k; a reader checks v's generation after.
func (v *affinity) is(k *affKey) bool {
	return v.c0.Load() == k.c0 && v.c1.Load() == k.c1 && v.g.Load() == k.g
}

// key is v's key; a reader checks v's generation after.
func (v *affinity) key() affKey { return affKey{v.c0.Load(), v.c1.Load(), v.g.Load()} }

const (
	affShardBits = 8
	affFreeMax   = 64 // swept records kept per shard for reuse
)

// affinityTable maps clients to the target their connections go to. On
// the connection path lookup, commit and release take no lock; a shard's
// lock serializes adding a record (a client's first connection) and
// Sweep, which removes expired ones.
type affinityTable struct {
	shards [1 << affShardBits]affShard
}

type affShard struct {
	mu   sync.Mutex
	tab  atomic.Pointer[affTab] // replaced whole when it grows or is swept
	n    atomic.Int64           // records in tab; written under mu, read by Len without it
	free []*affinity
	_    [16]byte
}

// affTab is an open-addressing table of records, probed linearly from
// the key's hash, at most half full. Slots are filled under the shard's
// lock and never emptied: sweep publishes a new table.
type affTab struct {
	slots []atomic.Pointer[affinity]
	mask  uint64
}

func newAffTab(n int) *affTab {
	size := 8
	for size < 2*n {
		size *= 2
	}
	return &affTab{slots: make([]atomic.Pointer[affinity], size), mask: uint64(size - 1)}
}

// put adds v, whose hash is h, to a table with room.
func (t *affTab) put(v *affinity, h uint64) {
	i := h & t.mask
	for t.slots[i].Load() != nil {
		i = (i + 1) & t.mask
	}
	t.slots[i].Store(v)
}

func (a *affinityTable) shard(h uint64) *affShard { return &a.shards[h>>(64-affShardBits)] }

// get finds k's live record and its state, without a lock.
func (s *affShard) get(k *affKey, h uint64) (*affinity, uint64) {
	t := s.tab.Load()
	if t == nil {
		return nil, 0
	}
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		v := t.slots[i].Load()
		if v == nil {
			return nil, 0
		}
		st := v.state.Load()
		if affGen(st)&1 == 0 && v.h.Load() == h && v.is(k) {
			return v, st
		}
	}
}

// lookup returns the client's node while the affinity holds, and its
// record, expired or not, with its generation, for commit.
func (a *affinityTable) lookup(k affKey, now int64) (node string, ok bool, rec *affinity, gen uint32) {
	h := k.hash()
	v, st := a.shard(h).get(&k, h)
	if v == nil {
		return "", false, nil, 0
	}
	t, expires := v.target.Load(), v.expires.Load()
	if affGen(v.state.Load()) != affGen(st) {
		return "", false, nil, 0 // swept meanwhile: as good as none
	}
	if t != nil && (affActive(st) > 0 || expires > now) {
		node, ok = t.Node, true
	}
	return node, ok, v, affGen(st)
}

// commit counts a connection of the client (vipa, port, client) to t and
// returns its record, which stays in the table until release ends the
// count. rec and gen are what lookup found, if anything: while the record
// was not swept since, it is counted without a lock. A record made with
// counted set is counted by the row it points at (hotstandby's, whose
// views need it); others cost the connection path nothing more.
func (a *affinityTable) commit(vipa netip.Addr, port uint16, client netip.Addr, t *Target, ttl int64, counted bool, rec *affinity, gen uint32) *affinity {
	if rec == nil || !rec.count(gen) {
		return a.add(affKeyOf(vipa, port, client), t, ttl, counted)
	}
	rec.setTTL(ttl)
	if rec.target.Load() != t {
		rec.retarget(t)
	}
	return rec
}

// setTTL sets v's duration, keeping its sign.
func (v *affinity) setTTL(ttl int64) {
	cur := v.ttl.Load()
	if cur < 0 {
		ttl = -ttl
	}
	if cur != ttl {
		v.ttl.Store(ttl)
	}
}

// duration is v's ttl.
func (v *affinity) duration() int64 {
	d := v.ttl.Load()
	if d < 0 {
		return -d
	}
	return d
}

// retarget points v at t and, for a counted record, keeps each row's count
// of the records that point at it. A record is retargeted only under its
// shard's lock or while a connection is counted in it, so sweep cannot
// take it out meanwhile.
func (v *affinity) retarget(t *Target) {
	if old := v.target.Swap(t); old != t && v.ttl.Load() < 0 {
		if old != nil {
			old.stats.affine(-1)
		}
		t.stats.affine(1)
	}
}

// count adds a connection to v unless v was swept since it was of
// generation gen.
func (v *affinity) count(gen uint32) bool {
	for {
		st := v.state.Load()
		if affGen(st) != gen {
			return false
		}
		next := st&^affCommitMask | (st+affCommitOne)&affCommitMask + 1
		if v.state.CompareAndSwap(st, next) {
			return true
		}
	}
}

// add counts a connection to t on k's record, made if there is none.
// Sweep holds the shard's lock to take a record out, so the one found
// under it is live.
func (a *affinityTable) add(k affKey, t *Target, ttl int64, counted bool) *affinity {
	h := k.hash()
	s := a.shard(h)
	s.mu.Lock()
	v, st := s.get(&k, h)
	if v == nil {
		if counted {
			ttl = -ttl
		}
		v = s.insert(&k, h, ttl)
		st = v.state.Load()
	} else {
		v.setTTL(ttl)
	}
	v.retarget(t)
	v.count(affGen(st))
	s.mu.Unlock()
	return v
}

// insert adds a new record for k with ttl, signed, to the locked shard s.
func (s *affShard) insert(k *affKey, h uint64, ttl int64) *affinity {
	var v *affinity
	if n := len(s.free); n > 0 {
		v, s.free = s.free[n-1], s.free[:n-1]
	} else {
		v = new(affinity)
		v.state.Store(1 << affGenShift) // as if swept once
	}
	v.expires.Store(0)
	v.ttl.Store(ttl)
	v.h.Store(h)
	v.c0.Store(k.c0)
	v.c1.Store(k.c1)
	v.g.Store(k.g)
	v.state.Store(uint64(affGen(v.state.Load())+1) << affGenShift) // live: even
	n := int(s.n.Load()) + 1
	t := s.tab.Load()
	if t == nil || 2*n > len(t.slots) {
		t = s.rebuild(t, n)
	}
	t.put(v, h)
	s.n.Store(int64(n))
	return v
}

// rebuild publishes a table sized for n records with the live records of
// old, and returns it.
func (s *affShard) rebuild(old *affTab, n int) *affTab {
	t := newAffTab(n)
	if old != nil {
		for i := range old.slots {
			if v := old.slots[i].Load(); v != nil && affGen(v.state.Load())&1 == 0 {
				t.put(v, v.h.Load())
			}
		}
	}
	s.tab.Store(t)
	return t
}

// release ends a connection counted in v by commit: with none left the
// affinity runs for its ttl from now (mono, read when needed). v stays
// live until then, since sweep keeps records with active connections.
func (a *affinityTable) release(v *affinity, now func() int64) {
	for {
		st := v.state.Load()
		if affActive(st) == 1 {
			// Before the count drops, so that sweep never sees 0 with a
			// stale expiry.
			v.expires.Store(now() + v.duration())
		}
		if v.state.CompareAndSwap(st, st-1) {
			return
		}
	}
}

// sweep deletes the expired affinities and returns how many are left.
func (a *affinityTable) sweep(now int64) int {
	n := 0
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		if t := s.tab.Load(); t != nil {
			gone := 0
			for j := range t.slots {
				if v := t.slots[j].Load(); v != nil && v.expire(now) {
					gone++
					if old := v.target.Swap(nil); old != nil && v.ttl.Load() < 0 {
						old.stats.affine(-1)
					}
					if len(s.free) < affFreeMax {
						s.free = append(s.free, v)
					}
				}
			}
			if gone > 0 {
				s.n.Add(int64(-gone))
				s.rebuild(t, int(s.n.Load()))
			}
			n += int(s.n.Load())
		}
		s.mu.Unlock()
	}
	return n
}

// expire makes v swept (an odd generation) if it has no connection and
// its expiry has passed, unless a connection is counted meanwhile.
func (v *affinity) expire(now int64) bool {
	st := v.state.Load()
	if affActive(st) != 0 || v.expires.Load() > now {
		return false
	}
	return v.state.CompareAndSwap(st, uint64(affGen(st)+1)<<affGenShift)
}

// SweepAffinity deletes expired affinities and returns how many remain. The
// routing node calls it periodically, off the connection path.
func (c *CRT) SweepAffinity(now time.Time) int { return c.aff.sweep(mono(now)) }

// AffinityLen is the number of affinity records held: each counts from its
// client's first connection until the first SweepAffinity after it
// expires. It takes no lock: a shard's count changes only when a record is
// made or swept, never per connection.
func (c *CRT) AffinityLen() int {
	n := int64(0)
	for i := range c.aff.shards {
		n += c.aff.shards[i].n.Load()
	}
	return int(n)
}

// Affinities lists the affinities in force, sorted by VIPA, port, client.
func (c *CRT) Affinities(now time.Time) []Affinity {
	t := mono(now)
	var out []Affinity
	for i := range c.aff.shards {
		s := &c.aff.shards[i]
		s.mu.Lock()
		if tab := s.tab.Load(); tab != nil {
			for j := range tab.slots {
				v := tab.slots[j].Load()
				if v == nil {
					continue
				}
				st, expires := v.state.Load(), v.expires.Load()
				if active := affActive(st); affGen(st)&1 == 0 && (active > 0 || expires > t) {
					k := v.key()
					a := Affinity{Node: v.target.Load().Node, ActiveConns: int(active)}
					a.Client, a.VIPA, a.Port = k.addrs()
					if active == 0 {
						a.Expires = now.Add(time.Duration(expires - t))
					}
					out = append(out, a)
				}
			}
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Affinity) int {
		if c := a.VIPA.Compare(b.VIPA); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		return a.Client.Compare(b.Client)
	})
	return out
}
