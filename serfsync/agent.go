// Package serfsync keeps a fleet of nodes in agreement over HashiCorp serf:
// membership, the VIPADISTRIBUTE definitions and each node's listener
// reports. It knows nothing of Caddy; many agents can run in one process.
package serfsync

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"
)

// Tag names this package sets on its serf member.
const (
	tagAdvertise = "adv"
)

// Member is one node of the fleet as serf sees it.
type Member struct {
	Name      string
	Address   netip.AddrPort // gossip address
	Advertise netip.Addr
	Status    string // alive, leaving, left, failed
}

// Agent is one node's membership in the fleet.
type Agent struct {
	cfg    Config
	logger *zap.Logger

	// OnMemberGone is called (from the agent's worker, never from serf's
	// event path) with the name of a member that failed or left.
	OnMemberGone func(name string)

	serf    *serf.Serf
	events  chan serf.Event
	gone    chan string
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped sync.Once
}

// New checks cfg and returns an agent that has bound nothing yet.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Agent{cfg: cfg, logger: cfg.Logger}, nil
}

// Start binds the gossip address, starts serf and joins the configured
// members in the background (retrying until one answers).
func (a *Agent) Start() error {
	mc, err := memberlistConfig(a.cfg.Profile)
	if err != nil {
		return err
	}
	mc.Name = a.cfg.NodeName
	mc.BindAddr = a.cfg.BindAddr.Addr().String()
	mc.BindPort = int(a.cfg.BindAddr.Port())
	mc.AdvertiseAddr = mc.BindAddr
	mc.AdvertisePort = mc.BindPort
	mc.Label = a.cfg.Label
	if len(a.cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(a.cfg.Keys, a.cfg.Keys[0])
		if err != nil {
			return fmt.Errorf("gossip keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	std := stdLogger(a.logger.Named("serf"))
	mc.Logger = std

	sc := serf.DefaultConfig()
	sc.NodeName = a.cfg.NodeName
	sc.MemberlistConfig = mc
	sc.Logger = std
	sc.EnableNameConflictResolution = false
	sc.ValidateNodeNames = true
	sc.Tags = map[string]string{tagAdvertise: a.cfg.Advertise.String()}
	a.events = make(chan serf.Event, 256)
	sc.EventCh = a.events

	s, err := serf.Create(sc)
	if err != nil {
		return fmt.Errorf("starting serf on %s: %w", a.cfg.BindAddr, err)
	}
	a.serf = s
	a.gone = make(chan string, 1024)
	a.stop = make(chan struct{})
	a.wg.Add(3)
	go a.drain()
	go a.work()
	go a.join()
	return nil
}

// BindAddr is the gossip address actually bound (useful with port 0).
func (a *Agent) BindAddr() netip.AddrPort {
	if a.serf == nil {
		return a.cfg.BindAddr
	}
	m := a.serf.LocalMember()
	ip, _ := netip.AddrFromSlice(m.Addr)
	return netip.AddrPortFrom(ip.Unmap(), m.Port)
}

// drain empties serf's event channel at once: serf writes it while holding
// its member lock, so a slow consumer would get this node declared failed.
func (a *Agent) drain() {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case e := <-a.events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			switch me.Type {
			case serf.EventMemberFailed, serf.EventMemberLeave, serf.EventMemberReap:
				for _, m := range me.Members {
					select {
					case a.gone <- m.Name:
					default:
						a.logger.Warn("member event queue full; the reconcile sweep will catch up", zap.String("member", m.Name))
					}
				}
			}
		}
	}
}

// work does what drain only marks.
func (a *Agent) work() {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case name := <-a.gone:
			if a.OnMemberGone != nil && name != a.cfg.NodeName {
				a.OnMemberGone(name)
			}
		}
	}
}

// join retries the configured members until one answers.
func (a *Agent) join() {
	defer a.wg.Done()
	if len(a.cfg.Join) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		n, err := a.serf.Join(a.cfg.Join, true)
		if n > 0 {
			a.logger.Info("joined fleet", zap.Int("contacted", n))
			return
		}
		a.logger.Warn("joining fleet", zap.Strings("join", a.cfg.Join), zap.Error(err))
		select {
		case <-a.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Members lists the fleet as this node sees it, sorted by name.
func (a *Agent) Members() []Member {
	if a.serf == nil {
		return nil
	}
	ms := a.serf.Members()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		ip, _ := netip.AddrFromSlice(m.Addr)
		adv, _ := netip.ParseAddr(m.Tags[tagAdvertise])
		out = append(out, Member{
			Name:      m.Name,
			Address:   netip.AddrPortFrom(ip.Unmap(), m.Port),
			Advertise: adv,
			Status:    m.Status.String(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stop leaves the fleet gracefully, so peers drop this node's rows at once
// instead of waiting for failure detection, then shuts serf down.
func (a *Agent) Stop() error {
	var err error
	a.stopped.Do(func() {
		if a.serf == nil {
			return
		}
		if lerr := a.serf.Leave(); lerr != nil {
			err = fmt.Errorf("leaving fleet: %w", lerr)
		}
		close(a.stop)
		err = errors.Join(err, a.serf.Shutdown())
		a.wg.Wait()
	})
	return err
}
