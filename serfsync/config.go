package serfsync

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Config of one fleet agent. Zero values take the defaults each field names.
type Config struct {
	// NodeName is this node's serf name; unique in the fleet.
	NodeName string

	// BindAddr is the gossip address (UDP and TCP) this agent listens on.
	// Port 0 picks a free port.
	BindAddr netip.AddrPort

	// Advertise is the address other nodes dial to reach this host's
	// applications; it travels in the node's tags.
	Advertise netip.Addr

	// Join lists gossip addresses of existing members to join at start.
	Join []string

	// Keys are the fleet's gossip encryption keys (16, 24 or 32 bytes); the
	// first is the primary. Empty means no encryption.
	Keys [][]byte

	// Label separates fleets that share a network; packets with another
	// label are dropped. Default: none (vipa.ValidateLabel bounds it).
	Label string

	// Insecure allows a non-loopback bind address without a key.
	Insecure bool

	// RemoteKeys lets members change this node's keyring with serf's
	// key-management queries. Off, the configured keys are kept: changes
	// are undone, counted and logged (see keyguard.go).
	RemoteKeys bool

	// Profile is the timing profile, a vipa profile name: "lan" (default),
	// "fast" or "wan".
	Profile string

	// SnapshotPath is the file where serf records the fleet's members, so a
	// restarted node rejoins them at once, with or without Join. Empty:
	// none; a file that cannot be written is logged and done without.
	SnapshotPath string

	// JoinWhenConfigured holds the join until Configured is called and
	// serf carries the tags set by then, so the fleet's first sight of
	// this node shows what it defines and backs up: seen before, it looks
	// like a node that can own nothing, and a backup that decides then
	// claims a VIPA whose defining node is in view.
	JoinWhenConfigured bool

	// Logger receives the agent's logs and serf's and memberlist's.
	Logger *zap.Logger

	hooks *hooks // tests only: timers and fault injection
}

// hooks shorten timers and inject faults in tests.
type hooks struct {
	reconcile     time.Duration // reconcile period instead of the profile's
	leaveDelay    time.Duration // serf's LeavePropagateDelay
	reconnect     time.Duration // serf's ReconnectInterval
	advTag        string        // an advertise tag other than Advertise
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	dropTag       func() bool            // a SetTags is lost without an error
	failTag       func() bool            // a SetTags times out
	dropRequest   func(to string) bool   // a sync request is lost on its way
	dropAnswer    func(from string) bool // a sync answer is lost on its way
	noCarry       bool                   // answer carry requests as a node predating them
	carryOneShot  bool                   // end a carry stream after one answer, as nodes before carry streams did
	carryAnswer   func(a *carryAnswer)   // alters a carry answer before it is sent
	taggerStart   func()                 // runs as the tagger goroutine begins
}

// fetchers is how many syncs with peers run at once.
const fetchers = 8

// reconcilePeriod is how often the worker sweeps the member list and a
// routing node syncs with every member: the bound on what a lost message
// can cost.
func (c *Config) reconcilePeriod() time.Duration {
	if c.hooks != nil && c.hooks.reconcile > 0 {
		return c.hooks.reconcile
	}
	switch c.Profile {
	case vipa.ProfileFast:
		return 2 * time.Second
	case vipa.ProfileWAN:
		return 10 * time.Second
	}
	return 3 * time.Second
}

// reconnectInterval is how often serf tries to rejoin a failed member, so
// a healed partition heals the fleet: serf's default of 30 s is WAN-minded.
func reconnectInterval(profile string) time.Duration {
	switch profile {
	case vipa.ProfileFast:
		return 5 * time.Second
	case vipa.ProfileWAN:
		return 30 * time.Second
	}
	return 10 * time.Second
}

// broadcastTimeout bounds a SetTags (and serf's leave broadcast). A tag
// broadcast memberlist dropped is only seen as this timeout, so keep it
// short enough to retry soon; a LAN broadcast completes well under 1 s
// even with 100 nodes.
func broadcastTimeout(profile string) time.Duration {
	if profile == vipa.ProfileWAN {
		return 5 * time.Second
	}
	return 2 * time.Second
}

// Validate checks the config without binding anything, by the rules of
// package vipa.
func (c *Config) Validate() error {
	if err := vipa.ValidateNodeName(c.NodeName); err != nil {
		return err
	}
	if err := vipa.ValidateLabel(c.Label); err != nil {
		return err
	}
	if !c.BindAddr.IsValid() {
		return errors.New("gossip bind address is required")
	}
	if _, err := memberlistConfig(c.Profile); err != nil {
		return err
	}
	for _, j := range c.Join {
		if err := vipa.ValidateJoin(j); err != nil {
			return err
		}
	}
	for _, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("gossip key: %w", err)
		}
	}
	return vipa.ValidateGossip(c.BindAddr, len(c.Keys) > 0, c.Insecure)
}

// memberlistConfig returns the memberlist timing for a profile name.
//
// On a LAN, gossip goes uncompressed: memberlist compresses every packet
// with a fresh LZW writer (a 64 KB table) to save a few hundred bytes a
// LAN does not miss, and a join storm sends thousands of packets a second.
func memberlistConfig(profile string) (*memberlist.Config, error) {
	name, err := vipa.ParseProfile(profile)
	if err != nil {
		return nil, err
	}
	switch name {
	case vipa.ProfileWAN:
		return memberlist.DefaultWANConfig(), nil
	case vipa.ProfileFast:
		// LAN with quicker gossip and probes: one switch, low loss.
		mc := memberlist.DefaultLANConfig()
		mc.EnableCompression = false
		mc.GossipInterval = 50 * time.Millisecond
		mc.GossipNodes = 4
		mc.ProbeInterval = 500 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.SuspicionMult = 3
		mc.PushPullInterval = 10 * time.Second
		return mc, nil
	}
	mc := memberlist.DefaultLANConfig()
	mc.EnableCompression = false
	return mc, nil
}
