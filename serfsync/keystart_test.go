package serfsync

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// slowAdvertise holds memberlist's Create in its second call for the
// advertise address (setAlive, listeners already running) until wait
// returns: the window in which serf has not yet learnt its memberlist.
type slowAdvertise struct {
	memberlist.NodeAwareTransport
	calls atomic.Int32
	wait  func()
}

func (s *slowAdvertise) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if s.calls.Add(1) == 2 {
		s.wait()
	}
	return s.NodeAwareTransport.FinalAdvertiseAddr(ip, port)
}

// TestKeyQueryWhileStarting: a node restarting at its old address is sent
// a key query by the fleet while serf is still being created. serf answers
// key queries through its memberlist, which it only learns once created:
// the query must wait for it rather than crash the node.
func TestKeyQueryWhileStarting(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	o := fleetOpts{keys: [][]byte{key}}
	nodes := startFleet(t, 3, o)
	old := nodes[2]
	port := old.BindAddr().Port()
	old.kill()

	// The fleet keeps asking; its gossip still reaches the old address.
	done := make(chan struct{})
	asked := make(chan struct{})
	go func() {
		defer close(asked)
		km := nodes[0].serf.KeyManager()
		for {
			select {
			case <-done:
				return
			default:
			}
			_, _ = km.ListKeys()
		}
	}()
	t.Cleanup(func() { close(done); <-asked })

	var fresh atomic.Pointer[Agent]
	cfg := o.config(old.name, old.ip, port, []string{nodes[0].BindAddr().String()})
	cfg.hooks.wrapTransport = func(tr memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		return &slowAdvertise{NodeAwareTransport: tr, wait: func() {
			// Long enough for a query to arrive; a query handled now
			// would be counted (the serf log line comes first).
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) && fresh.Load().Stats()["key_query"] == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
		}}
	}
	n := startNodeWith(t, cfg, func(n *tnode) { fresh.Store(n.Agent) })
	nodes[2] = n
	waitFor(t, 20*time.Second, "a key query answered by the restarted node", func() bool { return n.Stats()["key_query"] > 0 })
	waitFor(t, 20*time.Second, "restarted node admitted", func() bool { return alive(nodes[0]) == 3 && alive(n) == 3 })
}
