package relay

import (
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Dialed targets get net.Dialer's keepalive probes (15s idle, 15s interval,
// 9 probes), but only once they have lived through a sweep of their
// poller: four setsockopt calls per connection are a measurable share of a
// short connection's cost, and only long-lived connections ever probe. A
// target is armed within two sweep periods of its join.
const (
	keepIdle     = 15 // seconds
	keepInterval = 15 // seconds
	keepCount    = 9
)

// keepaliveSweep is the sweep period (a variable for tests).
var keepaliveSweep atomic.Int64

func init() { keepaliveSweep.Store(int64(5 * time.Second)) }

// armSweep starts the sweep timer if it is not running. Called with mu.
func (p *poller) armSweep() {
	if !p.sweepArmed {
		p.sweepArmed = true
		p.sweep.Reset(time.Duration(keepaliveSweep.Load()))
	}
}

// sweepTick asks the loop for a sweep and re-arms while relays are live.
func (p *poller) sweepTick() {
	p.mu.Lock()
	p.sweepArmed = p.live > 0
	if p.sweepArmed {
		p.sweep.Reset(time.Duration(keepaliveSweep.Load()))
	}
	live := p.live > 0
	p.mu.Unlock()
	if live && !p.sweepDue.Swap(true) {
		one := [8]byte{1}
		unix.Write(p.wakefd, one[:])
	}
}

// sweepKeepalive arms the probes of the targets that were already
// joined at the previous sweep. It runs on the loop, the only closer of
// raw descriptors, so each one stays open meanwhile.
func (p *poller) sweepKeepalive() {
	p.mu.Lock()
	fds := p.armFDs[:0]
	for _, s := range p.slots {
		if s == nil || !s.joined || s.swept >= 2 {
			continue
		}
		if s.swept++; s.swept == 2 {
			fds = append(fds, s.sides[1].fd)
		}
	}
	p.mu.Unlock()
	for _, fd := range fds {
		setKeepalive(fd) // a socket that failed meanwhile ends on its own
	}
	p.armFDs = fds[:0]
}

func setKeepalive(fd int) error {
	e := setsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	if e == 0 {
		e = setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepIdle)
	}
	if e == 0 {
		e = setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepInterval)
	}
	if e == 0 {
		e = setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepCount)
	}
	if e != 0 {
		return os.NewSyscallError("setsockopt", e)
	}
	return nil
}
