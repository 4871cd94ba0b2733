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
// so a v4-mapped client or VIPA finds the same affinity.
type affKey struct {
	client [16]byte
	vipa   [16]byte
	port   uint16
}

func affKeyOf(vipa netip.Addr, port uint16, client netip.Addr) affKey {
	return affKey{client: client.As16(), vipa: vipa.As16(), port: port}
}

// hash mixes the whole key into 64 bits: the shard is its top bits, and
// the shard's map is keyed by it, which hashes and compares a word rather
// than the 34 bytes of the key.
func (k *affKey) hash() uint64 {
	le := binary.LittleEndian
	h := mix(le.Uint64(k.vipa[:8]) ^ le.Uint64(k.vipa[8:])<<1 ^ uint64(k.port))
	return mix(h ^ le.Uint64(k.client[:8]) ^ mix(le.Uint64(k.client[8:])))
}

// affinity is one client's record. Its shard's lock guards the map and
// the chain (key, h, next); the connection path counts connections in
// state without it. Records live in the map by pointer, so commit and
// release find them again without hashing, and swept ones are reused.
type affinity struct {
	// state packs the count of active connections, a count of commits
	// (so that sweep tells a record that was used meanwhile from one that
	// was not) and a generation bumped when swept (so that a stale pointer
	// to a reused record is told apart).
	state   atomic.Uint64
	expires atomic.Int64 // monotonic clock (mono); in force only once active is 0
	ttl     atomic.Int64
	target  atomic.Pointer[Target] // its Node is the affinity's
	h       uint64                 // key.hash()
	next    *affinity              // the next record whose key hashes to h, rarely any
	key     affKey
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

const (
	affShardBits = 10
	affFreeMax   = 64 // swept records kept per shard for reuse
)

// affinityTable maps clients to the target their connections go to. Its
// shards are locked briefly by lookup on the connection path; commit and
// release update a known record without the lock, and expired records are
// swept by Sweep, not there.
type affinityTable struct {
	shards [1 << affShardBits]affShard
}

type affShard struct {
	mu   sync.Mutex
	m    map[uint64]*affinity // by key hash; records with one hash are chained
	free []*affinity
	_    [24]byte
}

func (a *affinityTable) shard(h uint64) *affShard { return &a.shards[h>>(64-affShardBits)] }

// find is the record of k in the locked shard s, or nil.
func (s *affShard) find(k *affKey, h uint64) *affinity {
	v := s.m[h]
	for v != nil && v.key != *k {
		v = v.next
	}
	return v
}

// lookup returns the client's node while the affinity holds, and its
// record, expired or not, with its generation, for commit.
func (a *affinityTable) lookup(k affKey, now int64) (node string, ok bool, rec *affinity, gen uint32) {
	h := k.hash()
	s := a.shard(h)
	s.mu.Lock()
	if v := s.find(&k, h); v != nil {
		st := v.state.Load()
		rec, gen = v, affGen(st)
		if affActive(st) > 0 || v.expires.Load() > now {
			node, ok = v.target.Load().Node, true
		}
	}
	s.mu.Unlock()
	return node, ok, rec, gen
}

// commit counts a connection of the client (vipa, port, client) to t and
// returns its record, which stays in the table until release ends the
// count. rec and gen are what lookup found, if anything: while the record
// was not swept since, it is counted without the shard's lock.
func (a *affinityTable) commit(vipa netip.Addr, port uint16, client netip.Addr, t *Target, ttl int64, rec *affinity, gen uint32) *affinity {
	if rec == nil || !rec.count(gen) {
		return a.find(affKeyOf(vipa, port, client), t, ttl)
	}
	rec.ttl.Store(ttl)
	if rec.target.Load() != t {
		rec.target.Store(t)
	}
	return rec
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

// find counts a connection to t on k's record, made if there is none.
// Sweep holds the shard's lock to take a record out, so the one found is
// live.
func (a *affinityTable) find(k affKey, t *Target, ttl int64) *affinity {
	h := k.hash()
	s := a.shard(h)
	s.mu.Lock()
	v := s.find(&k, h)
	if v == nil {
		v = s.insert(k, h)
	}
	v.target.Store(t)
	v.ttl.Store(ttl)
	v.count(affGen(v.state.Load()))
	s.mu.Unlock()
	return v
}

// insert adds a new record for k to the locked shard s.
func (s *affShard) insert(k affKey, h uint64) *affinity {
	if s.m == nil {
		s.m = make(map[uint64]*affinity)
	}
	var v *affinity
	if n := len(s.free); n > 0 {
		// Swept: its generation is already past any pointer's to it.
		v, s.free = s.free[n-1], s.free[:n-1]
		v.expires.Store(0)
	} else {
		v = new(affinity)
	}
	v.key, v.h, v.next = k, h, s.m[h]
	s.m[h] = v
	return v
}

// release ends a connection counted in v by commit: with none left the
// affinity runs for its ttl from now (mono, read when needed). v is in
// the table until then, since sweep keeps records with active connections.
func (a *affinityTable) release(v *affinity, now func() int64) {
	for {
		st := v.state.Load()
		if affActive(st) == 1 {
			// Before the count drops, so that sweep never sees 0 with a
			// stale expiry.
			v.expires.Store(now() + v.ttl.Load())
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
		for h, v := range s.m {
			var keep *affinity
			for v != nil {
				next := v.next
				if v.expire(now) {
					v.next = nil
					if len(s.free) < affFreeMax {
						s.free = append(s.free, v)
					}
				} else {
					v.next, keep = keep, v
					n++
				}
				v = next
			}
			if keep == nil {
				delete(s.m, h)
			} else {
				s.m[h] = keep
			}
		}
		s.mu.Unlock()
	}
	return n
}

// expire moves v to its next generation if it has no connection and its
// expiry has passed, unless a connection is counted meanwhile.
func (v *affinity) expire(now int64) bool {
	st := v.state.Load()
	if affActive(st) != 0 || v.expires.Load() > now {
		return false
	}
	return v.state.CompareAndSwap(st, uint64(affGen(st)+1)<<affGenShift)
}

// epoch anchors mono, a monotonic clock read once per call (time.Now reads
// two clocks): affinity expiries need no wall time until they are listed.
var epoch = time.Now()

func mono(t time.Time) int64 { return int64(t.Sub(epoch)) }

func monoNow() int64 { return int64(time.Since(epoch)) }

// SweepAffinity deletes expired affinities and returns how many remain. The
// routing node calls it periodically, off the connection path.
func (c *CRT) SweepAffinity(now time.Time) int { return c.aff.sweep(mono(now)) }

// Affinities lists the affinities in force, sorted by VIPA, port, client.
func (c *CRT) Affinities(now time.Time) []Affinity {
	t := mono(now)
	var out []Affinity
	for i := range c.aff.shards {
		s := &c.aff.shards[i]
		s.mu.Lock()
		for _, v := range s.m {
			for ; v != nil; v = v.next {
				active, expires := affActive(v.state.Load()), v.expires.Load()
				if active == 0 && expires <= t {
					continue
				}
				k := &v.key
				a := Affinity{
					Client: netip.AddrFrom16(k.client).Unmap(), VIPA: netip.AddrFrom16(k.vipa).Unmap(), Port: k.port,
					Node: v.target.Load().Node, ActiveConns: int(active),
				}
				if active == 0 {
					a.Expires = now.Add(time.Duration(expires - t))
				}
				out = append(out, a)
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
