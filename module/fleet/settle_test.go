package fleet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// A node with a join list decides once its first join attempt has
// returned: a member in view before that (one that contacted it, or the
// first the join reached) is not enough for settleWait, as the backup that
// routes its VIPA may not be in view yet. Alone, it waits settleWait after
// the attempt; a join that never returns, maxSettleWait.
func TestSettledAfterTheJoin(t *testing.T) {
	for _, c := range []struct {
		tried, others bool
		waited        time.Duration
		want          bool
	}{
		{false, true, 100 * time.Millisecond, false},
		{false, true, time.Second, false},
		{false, true, 2500 * time.Millisecond, true},
		{true, true, 100 * time.Millisecond, true},
		{true, false, time.Second, false},
		{true, false, 2500 * time.Millisecond, true},
		{false, false, 5 * time.Second, false},
		{false, true, maxSettleWait + time.Millisecond, true},
		{false, false, maxSettleWait + time.Millisecond, true},
	} {
		if got := settled(c.tried, c.others, c.waited, vipa.ProfileFast); got != c.want {
			t.Errorf("join returned %v, others in view %v, %v after the start: settled %v, want %v", c.tried, c.others, c.waited, got, c.want)
		}
	}
}

// All nodes started at once: a backup whose join reached one member of its
// list has not seen the others, and the routing node may be one of them. It
// decides once each member the list names by address is alive in view.
func TestJoinedAll(t *testing.T) {
	self := netip.MustParseAddrPort("127.0.0.2:7946")
	m := func(addr, status string) serfsync.Member {
		return serfsync.Member{Address: netip.MustParseAddrPort(addr), Status: status}
	}
	join := []string{"127.0.0.1:7946", "127.0.0.2:7946", "127.0.0.3:7946", "seed.example:7946"}
	for _, c := range []struct {
		ms   []serfsync.Member
		want bool
	}{
		{[]serfsync.Member{m("127.0.0.3:7946", "alive")}, false},
		{[]serfsync.Member{m("127.0.0.3:7946", "alive"), m("127.0.0.1:7946", "failed")}, false},
		{[]serfsync.Member{m("127.0.0.3:7946", "alive"), m("127.0.0.1:7946", "alive")}, true},
		{[]serfsync.Member{m("[::ffff:127.0.0.3]:7946", "alive"), m("127.0.0.1:7946", "alive")}, true},
	} {
		if got := joinedAll(join, self, c.ms); got != c.want {
			t.Errorf("members %+v: joined all %v, want %v", c.ms, got, c.want)
		}
	}
}
