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

// A member counts as in view for settling only once its tags carry its
// config: serf's rejoin from its snapshot, or a join retry that reached it
// between its bind and its tags, shows it with no ranks and no
// definitions, and a backup that decided then would claim the VIPA it
// defines. One that never says (an older version) leaves the node to the
// settle wait.
func TestSettledOnConfiguredMembers(t *testing.T) {
	self := netip.MustParseAddrPort("127.0.0.2:7946")
	m := func(name, addr string, configured bool) serfsync.Member {
		return serfsync.Member{Name: name, Address: netip.MustParseAddrPort(addr), Status: "alive", Configured: configured}
	}
	me := m("caddy-b", "127.0.0.2:7946", false) // this node's own entry counts as configured
	join := []string{"127.0.0.1:7946", "127.0.0.3:7946"}
	byName := []string{"caddy-a.example:7946"}
	short, long := 100*time.Millisecond, 2500*time.Millisecond
	for _, c := range []struct {
		name   string
		join   []string
		ms     []serfsync.Member
		waited time.Duration
		want   bool
	}{
		{"both bare", join, []serfsync.Member{me, m("caddy-a", "127.0.0.1:7946", false), m("caddy-c", "127.0.0.3:7946", false)}, short, false},
		{"owner bare", join, []serfsync.Member{me, m("caddy-a", "127.0.0.1:7946", false), m("caddy-c", "127.0.0.3:7946", true)}, short, false},
		{"both configured", join, []serfsync.Member{me, m("caddy-a", "127.0.0.1:7946", true), m("caddy-c", "127.0.0.3:7946", true)}, short, true},
		{"bare, settle wait passed", join, []serfsync.Member{me, m("caddy-a", "127.0.0.1:7946", false), m("caddy-c", "127.0.0.3:7946", false)}, long, true},
		{"named, bare", byName, []serfsync.Member{me, m("caddy-a", "127.0.0.1:7946", false)}, short, false},
		{"named, configured", byName, []serfsync.Member{me, m("caddy-a", "127.0.0.1:7946", true)}, short, true},
		{"named, bare, settle wait passed", byName, []serfsync.Member{me, m("caddy-a", "127.0.0.1:7946", false)}, long, true},
	} {
		if got := settledOn(true, c.join, self, "caddy-b", c.ms, c.waited, vipa.ProfileFast); got != c.want {
			t.Errorf("%s, %v after the start: settled %v, want %v", c.name, c.waited, got, c.want)
		}
	}
}
