package tables

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
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

// affKey: affinities are per client IP and (VIPA, port). Plain bytes hash
// and compare as one block of memory, faster than netip.Addr's fields; As16
// maps IPv4, so a v4-mapped client or VIPA finds the same affinity.
type affKey struct {
	client [16]byte
	vipa   [16]byte
	port   uint16
}

func affKeyOf(vipa netip.Addr, port uint16, client netip.Addr) affKey {
	return affKey{client: client.As16(), vipa: vipa.As16(), port: port}
}

// affinity is one client's record; the shard's lock guards it. Records
// live in the map by pointer, so commit and release hash the key once, and
// swept ones are reused.
type affinity struct {
	node    string
	active  int32
	gen     uint32 // bumped when swept, so a stale pointer to it is told apart
	expires int64  // monotonic clock (mono), once active is 0
	ttl     int64
	_       [24]byte // 64 bytes: one cache line, apart from other clients'
}

const (
	affShardBits = 8
	affFreeMax   = 256 // swept records kept per shard for reuse
)

// affinityTable maps clients to the target their connections go to. Its
// shards are locked briefly on the connection path, by lookup and by
// commit and release; expired entries are swept by Sweep, not there.
type affinityTable struct {
	shards [1 << affShardBits]affShard
}

type affShard struct {
	mu   sync.Mutex
	m    map[affKey]*affinity
	free []*affinity
	_    [24]byte
}

func (a *affinityTable) shard(k *affKey) *affShard {
	h := mix(binary.LittleEndian.Uint64(k.client[:8]) ^ binary.LittleEndian.Uint64(k.client[8:]) ^ uint64(k.port))
	return &a.shards[h>>(64-affShardBits)]
}

// lookup returns the client's node while the affinity holds, and its
// record, expired or not, for commit.
func (a *affinityTable) lookup(k affKey, now int64) (node string, ok bool, rec *affinity, gen uint32) {
	s := a.shard(&k)
	s.mu.Lock()
	if v := s.m[k]; v != nil {
		rec, gen = v, v.gen
		if v.active > 0 || v.expires > now {
			node, ok = v.node, true
		}
	}
	s.mu.Unlock()
	return node, ok, rec, gen
}

// commit counts a connection of the client to node. rec and gen are what
// lookup found for k, if anything: while the record was not swept since,
// it is updated without hashing k again.
func (a *affinityTable) commit(k affKey, node string, ttl int64, rec *affinity, gen uint32) {
	s := a.shard(&k)
	s.mu.Lock()
	v := rec
	if v == nil || v.gen != gen {
		v = s.m[k]
	}
	if v == nil {
		if s.m == nil {
			s.m = make(map[affKey]*affinity)
		}
		if n := len(s.free); n > 0 {
			v, s.free = s.free[n-1], s.free[:n-1]
			*v = affinity{gen: v.gen}
		} else {
			v = new(affinity)
		}
		s.m[k] = v
	}
	v.node, v.ttl, v.expires = node, ttl, 0
	v.active++
	s.mu.Unlock()
}

// release ends a connection of the client: with none left the affinity
// runs for its ttl from now.
func (a *affinityTable) release(k affKey, now int64) {
	s := a.shard(&k)
	s.mu.Lock()
	if v := s.m[k]; v != nil {
		if v.active--; v.active <= 0 {
			v.active, v.expires = 0, now+v.ttl
		}
	}
	s.mu.Unlock()
}

// sweep deletes the expired affinities and returns how many are left.
func (a *affinityTable) sweep(now int64) int {
	n := 0
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if v.active == 0 && v.expires <= now {
				delete(s.m, k)
				v.gen++
				if len(s.free) < affFreeMax {
					s.free = append(s.free, v)
				}
			}
		}
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
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
		for k, v := range s.m {
			if v.active == 0 && v.expires <= t {
				continue
			}
			a := Affinity{
				Client: netip.AddrFrom16(k.client).Unmap(), VIPA: netip.AddrFrom16(k.vipa).Unmap(), Port: k.port,
				Node: v.node, ActiveConns: int(v.active),
			}
			if v.active == 0 {
				a.Expires = now.Add(time.Duration(v.expires - t))
			}
			out = append(out, a)
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
