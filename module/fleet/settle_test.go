package fleet

import (
	"testing"
	"time"

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
