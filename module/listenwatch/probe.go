package listenwatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// DefaultProbeInterval is the polling interval of a probing Watcher whose
// Interval is unset: each probe is a connection the application accepts.
const DefaultProbeInterval = time.Second

// maxProbeTimeout bounds one probe: the addresses are this host's own, so an
// answer takes microseconds; silence means nothing accepts there.
const maxProbeTimeout = time.Second

// minProbeTimeout is the least a probe waits, however short the interval: on
// a loaded host a local connect can take milliseconds to be scheduled, and a
// probe that gives up sooner would report a live application gone.
const minProbeTimeout = 250 * time.Millisecond

// probeWorkers bounds the probes in flight at once.
const probeWorkers = 8

// prober finds listeners by connecting to the addresses where applications
// would be dialed: for hosts whose socket table cannot be read (systems other
// than Linux, or applications in another network namespace). An address that
// accepts counts as one listening socket; the connection is closed at once,
// so the application sees a client that connects and leaves.
type prober struct {
	addrs   func() []netip.AddrPort
	timeout time.Duration
}

// scan replaces the contents of s with the addresses that accept a
// connection. An address that refuses or stays silent is not listening; any
// other failure (no free port, too many open files) fails the scan, so the
// last snapshot stands.
func (p *prober) scan(s Snapshot) error {
	addrs := p.addrs()
	up := make([]bool, len(addrs))
	errs := make([]error, len(addrs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(probeWorkers, len(addrs)) {
		wg.Go(func() {
			for i := range work {
				up[i], errs[i] = p.probe(addrs[i])
			}
		})
	}
	for i := range addrs {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	clear(s)
	for i, ap := range addrs {
		if up[i] {
			s.add(ap)
		}
	}
	return nil
}

// probe reports whether something accepts connections at ap.
func (p *prober) probe(ap netip.AddrPort) (bool, error) {
	c, err := net.DialTimeout("tcp", ap.String(), p.timeout)
	if err == nil {
		c.Close()
		return true, nil
	}
	var ne net.Error
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &ne) && ne.Timeout() {
		return false, nil
	}
	return false, fmt.Errorf("listenwatch: probing %s: %w", ap, err)
}
