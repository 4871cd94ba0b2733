package serfsync

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Member is one node of the fleet as serf sees it.
type Member struct {
	Name      string
	Address   netip.AddrPort // gossip address
	Advertise netip.Addr
	Status    string // alive, leaving, left, failed
	VIPADyn   VIPADyn

	// Configured: its tags carry its config (see Agent.Configured). A
	// member without it may define or back up VIPAs its tags do not show
	// yet: it is starting, or runs a version that does not say.
	Configured bool
}

// Agent is one node's membership in the fleet.
type Agent struct {
	cfg    Config
	logger *zap.Logger

	// Callbacks, set before Start. They are called from the agent's worker
	// goroutine, never from serf's event path, never concurrently.

	// OnMemberGone is called with the name of a member that failed or left:
	// drop its rows at once. Its report is forgotten here too, so a rejoin
	// is reported afresh through OnReport.
	OnMemberGone func(name string)

	// OnDefinitions is called when the definitions known to this node
	// change, its own included; the argument is what Definitions returns.
	OnDefinitions func([]KnownDefinition)

	// OnReport is called on a routing node with the full, validated rows of
	// node for the VIPAs this node owns; they replace what it had (empty:
	// none). It is called for this node's own report too.
	OnReport func(node string, rows []vipa.Listener)

	// OwnerState gives what this node shares as a routing node with the
	// standbys of its VIPAs (carry.go): its drains and its rows' health.
	// It is called on the state channel's server goroutines, concurrently.
	OwnerState func() OwnerState

	// OnOwnerState is called on a standby with the state of a routing
	// node of a VIPA it stands by for, when it differs from the last one
	// from that node; from one goroutine, never concurrently.
	OnOwnerState func(from string, s OwnerState)

	keys  channelKeys
	stats stats

	joinTried      atomic.Bool   // the first join attempt has returned
	configured     chan struct{} // closed by Configured
	configuredOnce sync.Once
	joinReady      chan struct{} // closed once serf carries the configured tags
	joinReadyOnce  sync.Once
	keyring        *memberlist.Keyring // serf's; guarded unless RemoteKeys

	serf    *serf.Serf
	mux     *muxTransport
	events  chan serf.Event
	kickCh  chan struct{}
	tagCh   chan struct{}
	jobs    chan syncJob
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped sync.Once

	updMu   sync.Mutex
	updates map[string]memberView // member events not yet applied

	mu      sync.Mutex
	core    *core // the fleet state and the protocol's decisions
	conns   map[net.Conn]struct{}
	closing bool

	carryStreams atomic.Int32 // carry streams this node serves and keeps open
}

// New checks cfg and returns an agent that has bound nothing yet.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Advertise = cfg.Advertise.Unmap()
	a := &Agent{
		cfg:     cfg,
		logger:  cfg.Logger,
		keys:    newChannelKeys(cfg.Keys, cfg.Label),
		kickCh:  make(chan struct{}, 1),
		tagCh:   make(chan struct{}, 1),
		jobs:    make(chan syncJob, fetchers),
		stop:    make(chan struct{}),
		updates: map[string]memberView{},
		conns:   map[net.Conn]struct{}{},

		configured: make(chan struct{}),
		joinReady:  make(chan struct{}),
	}
	a.core = newCore(cfg.NodeName, cfg.Advertise, newGen(), cfg.reconcilePeriod(), cfg.Logger, &a.stats)
	return a, nil
}

// newGen draws a non-zero generation: zero means "nothing held".
func newGen() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if g := binary.BigEndian.Uint64(b[:]); g != 0 {
			return g
		}
	}
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
	std := stdLogger(a.logger.Named("serf"), &a.stats)
	mc.Logger = std

	// Our own transport, so the state channel shares the gossip port.
	nt, err := newNetTransport(a.cfg.BindAddr.Addr().AsSlice(), int(a.cfg.BindAddr.Port()), std)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("port %d is in use (gossip takes it on TCP and UDP): %w", a.cfg.BindAddr.Port(), err)
	}
	if err != nil {
		return fmt.Errorf("binding the gossip address: %w", err)
	}
	var inner memberlist.NodeAwareTransport = nt
	if h := a.cfg.hooks; h != nil && h.wrapTransport != nil {
		inner = h.wrapTransport(inner)
	}
	mux := newMux(inner, a.serveConn)
	mc.Transport = mux
	mc.BindPort = nt.port()
	mc.AdvertiseAddr = mc.BindAddr
	mc.AdvertisePort = mc.BindPort

	sc := serf.DefaultConfig()
	sc.NodeName = a.cfg.NodeName
	sc.MemberlistConfig = mc
	sc.Logger = std
	sc.EnableNameConflictResolution = false
	sc.ValidateNodeNames = true
	sc.BroadcastTimeout = broadcastTimeout(a.cfg.Profile)
	sc.ReconnectInterval = reconnectInterval(a.cfg.Profile)
	if h := a.cfg.hooks; h != nil {
		if h.leaveDelay > 0 {
			sc.LeavePropagateDelay = h.leaveDelay
		}
		if h.reconnect > 0 {
			sc.ReconnectInterval = h.reconnect
		}
	}
	sc.Tags = a.tags()
	a.useSnapshot(sc)
	a.events = make(chan serf.Event, 1024)
	sc.EventCh = a.events

	s, err := serf.Create(sc)
	if err != nil {
		_ = mux.Shutdown()
		return fmt.Errorf("starting serf on %s: %w", a.cfg.BindAddr, err)
	}
	a.mu.Lock()
	a.serf, a.mux = s, mux
	a.mu.Unlock()
	mux.open()
	a.guardKeyring(mc.Keyring)
	a.wg.Add(5 + fetchers)
	go a.carrier()
	go a.drain()
	go a.work()
	go a.tagger(maps.Clone(sc.Tags))
	go a.join()
	for range fetchers {
		go a.fetcher()
	}
	a.kick()
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
// It only queues the members the events name; the worker does the rest.
func (a *Agent) drain() {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case e := <-a.events:
			if me, ok := e.(serf.MemberEvent); ok {
				a.queueMemberEvent(me)
				a.kick()
			}
		}
	}
}

// queueMemberEvent keeps the members of a serf member event for the worker;
// only the latest word on each member counts.
func (a *Agent) queueMemberEvent(e serf.MemberEvent) {
	a.updMu.Lock()
	for i := range e.Members {
		v := viewOf(&e.Members[i])
		v.reaped = e.Type == serf.EventMemberReap
		a.updates[v.name] = v
	}
	a.updMu.Unlock()
}

// takeMemberUpdates hands the worker the updates queued since last time.
func (a *Agent) takeMemberUpdates() []memberView {
	a.updMu.Lock()
	defer a.updMu.Unlock()
	if len(a.updates) == 0 {
		return nil
	}
	out := make([]memberView, 0, len(a.updates))
	for _, v := range a.updates {
		out = append(out, v)
	}
	clear(a.updates)
	return out
}

// viewOf is the core's view of a serf member.
func viewOf(sm *serf.Member) memberView {
	ip, _ := netip.AddrFromSlice(sm.Addr)
	return memberView{name: sm.Name, addr: netip.AddrPortFrom(ip.Unmap(), sm.Port),
		alive: sm.Status == serf.StatusAlive, tags: sm.Tags}
}

// join retries the configured members until one answers.
func (a *Agent) join() {
	defer a.wg.Done()
	if len(a.cfg.Join) == 0 {
		return
	}
	if a.cfg.JoinWhenConfigured {
		select {
		case <-a.stop:
			return
		case <-a.joinReady:
		}
	}
	backoff := 200 * time.Millisecond
	for {
		n, err := a.serf.Join(a.cfg.Join, true)
		a.joinTried.Store(true)
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

// Configured says this node's config is in: its SetDefinitions and
// SetVIPADyn are done. Its tags say so from then (Member.Configured), and
// with JoinWhenConfigured the join begins once serf carries them. Only the
// first call counts.
func (a *Agent) Configured() {
	a.configuredOnce.Do(func() {
		close(a.configured)
		a.kickTags()
	})
}

// JoinTried reports whether the first attempt to join the configured
// members has returned, answered or not (true without a join list).
func (a *Agent) JoinTried() bool {
	return len(a.cfg.Join) == 0 || a.joinTried.Load()
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
			VIPADyn:   parseVIPADyn(m.Tags[tagVIPADyn]),

			Configured: m.Tags[tagConfigured] != "",
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
		a.closeConns()
		err = errors.Join(err, a.serf.Shutdown())
		a.wg.Wait()
	})
	return err
}

// closeConns stops the agent's loops and closes its sync connections; none
// opens after it.
func (a *Agent) closeConns() {
	close(a.stop)
	a.mu.Lock()
	a.closing = true
	for c := range a.conns {
		_ = c.Close()
	}
	a.mu.Unlock()
}

// kick wakes the worker; a pending wake is enough.
func (a *Agent) kick() {
	select {
	case a.kickCh <- struct{}{}:
	default:
	}
}

// SetReport sets this node's current listeners. Call it on every change;
// an unchanged set costs a sort and a compare. The routing nodes of the
// VIPAs in the old or new set are told at once over the state channel; the
// serf tag follows for everyone else.
func (a *Agent) SetReport(ls []vipa.Listener) {
	a.mu.Lock()
	changed := a.core.setReport(ls)
	a.mu.Unlock()
	if changed {
		a.kick()
	}
}

// SetDefinitions sets the definitions this node routes; their RoutingNode
// becomes this node's name. Call it before or after Start and on reload.
// Definitions and OnDefinitions reflect it after the worker's next round
// (at once once started).
//
// A definition the fleet could not carry (it breaks a rule of vipa's, or
// would make the body too large for the state channel) is logged as an
// error and left out; the others go out.
func (a *Agent) SetDefinitions(defs []*vipa.Definition) {
	a.mu.Lock()
	changed := a.core.setDefinitions(defs, time.Now())
	a.mu.Unlock()
	if changed {
		a.kick()
	}
}

// Definitions lists every definition known here, this node's included,
// sorted by VIPA then routing node; conflict losers are marked.
func (a *Agent) Definitions() []KnownDefinition {
	a.mu.Lock()
	defer a.mu.Unlock()
	return cloneKnown(a.core.known)
}
