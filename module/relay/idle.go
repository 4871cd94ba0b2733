package relay

import (
	"sync/atomic"
	"time"
)

// epoch anchors idle clocks on the monotonic clock.
var epoch = time.Now()

// idleClock remembers when bytes last moved. Touching it is one atomic store,
// so timers are not re-armed on every read; whoever wakes at the deadline asks
// how long the connection has really been idle.
type idleClock struct {
	timeout time.Duration
	last    atomic.Int64 // nanoseconds since epoch
}

func (c *idleClock) start(timeout time.Duration) {
	c.timeout = timeout
	c.touch()
}

// touch records activity now.
func (c *idleClock) touch() {
	if c.timeout > 0 {
		c.last.Store(int64(time.Since(epoch)))
	}
}

// remaining is how long until the connection counts as idle; ≤0 means idle.
func (c *idleClock) remaining() time.Duration {
	return time.Duration(c.last.Load()) + c.timeout - time.Since(epoch)
}
