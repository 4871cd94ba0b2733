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

// affKey: affinities are per client IP and (VIPA, port).
type affKey struct {
	vipa   netip.Addr
	port   uint16
	client netip.Addr
}

func affKeyOf(vipa netip.Addr, port uint16, client netip.Addr) affKey {
	return affKey{vipa.Unmap(), port, client.Unmap()}
}

type affinity struct {
	node    string
	active  int32
	expires int64 // unix nanoseconds, once active is 0
	ttl     int64
}

const affShardBits = 8

// affinityTable maps clients to the target their connections go to. Its
// shards are locked briefly on the connection path, by lookup and by
// commit and release; expired entries are swept by Sweep, not there.
type affinityTable struct {
	shards [1 << affShardBits]affShard
}

type affShard struct {
	mu sync.Mutex
	m  map[affKey]affinity
	_  [48]byte
}

func (a *affinityTable) shard(k affKey) *affShard {
	b := k.client.As16()
	h := mix(binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:]) ^ uint64(k.port))
	return &a.shards[h>>(64-affShardBits)]
}

// lookup returns the client's node while the affinity holds.
func (a *affinityTable) lookup(k affKey, now int64) (string, bool) {
	s := a.shard(k)
	s.mu.Lock()
	v, ok := s.m[k]
	s.mu.Unlock()
	if !ok || (v.active == 0 && v.expires <= now) {
		return "", false
	}
	return v.node, true
}

// commit counts a connection of the client to node.
func (a *affinityTable) commit(k affKey, node string, ttl int64) {
	s := a.shard(k)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[affKey]affinity)
	}
	v := s.m[k]
	v.node, v.ttl, v.expires = node, ttl, 0
	v.active++
	s.m[k] = v
	s.mu.Unlock()
}

// release ends a connection of the client: with none left the affinity
// runs for its ttl from now.
func (a *affinityTable) release(k affKey, now int64) {
	s := a.shard(k)
	s.mu.Lock()
	if v, ok := s.m[k]; ok {
		if v.active--; v.active <= 0 {
			v.active, v.expires = 0, now+v.ttl
		}
		s.m[k] = v
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
			}
		}
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// SweepAffinity deletes expired affinities and returns how many remain. The
// routing node calls it periodically, off the connection path.
func (c *CRT) SweepAffinity(now time.Time) int { return c.aff.sweep(now.UnixNano()) }

// Affinities lists the affinities in force, sorted by VIPA, port, client.
func (c *CRT) Affinities(now time.Time) []Affinity {
	t := now.UnixNano()
	var out []Affinity
	for i := range c.aff.shards {
		s := &c.aff.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if v.active == 0 && v.expires <= t {
				continue
			}
			a := Affinity{Client: k.client, VIPA: k.vipa, Port: k.port, Node: v.node, ActiveConns: int(v.active)}
			if v.active == 0 {
				a.Expires = time.Unix(0, v.expires)
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
