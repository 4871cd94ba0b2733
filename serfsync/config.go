package serfsync

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Config of one fleet agent. Zero values take the defaults of DefaultConfig.
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
	// label are dropped.
	Label string

	// Insecure allows a non-loopback bind address without a key.
	Insecure bool

	// RemoteKeys lets members change this node's keyring with serf's
	// key-management queries. Off, the configured keys are kept: changes
	// are undone, counted and logged (see keyguard.go).
	RemoteKeys bool

	// Profile is the timing profile: "lan" (default), "fast" or "wan".
	Profile string

	// SnapshotPath is the file where serf records the fleet's members, so a
	// restarted node rejoins them at once, with or without Join. Empty:
	// none; a file that cannot be written is logged and done without.
	SnapshotPath string

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
	case "fast":
		return 2 * time.Second
	case "wan":
		return 10 * time.Second
	}
	return 3 * time.Second
}

// reconnectInterval is how often serf tries to rejoin a failed member, so
// a healed partition heals the fleet: serf's default of 30 s is WAN-minded.
func reconnectInterval(profile string) time.Duration {
	switch profile {
	case "fast":
		return 5 * time.Second
	case "wan":
		return 30 * time.Second
	}
	return 10 * time.Second
}

// broadcastTimeout bounds a SetTags (and serf's leave broadcast). A tag
// broadcast memberlist dropped is only seen as this timeout, so keep it
// short enough to retry soon; a LAN broadcast completes well under 1 s
// even with 100 nodes.
func broadcastTimeout(profile string) time.Duration {
	if profile == "wan" {
		return 5 * time.Second
	}
	return 2 * time.Second
}

// Profiles are the serf timing profiles a Config may name.
var Profiles = []string{"lan", "fast", "wan"}

// Validate checks the config without binding anything.
func (c *Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("node name is required")
	}
	if !c.BindAddr.IsValid() {
		return errors.New("gossip bind address is required")
	}
	if _, err := memberlistConfig(c.Profile); err != nil {
		return err
	}
	for _, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("gossip key: %w", err)
		}
	}
	if len(c.Keys) == 0 && !c.BindAddr.Addr().IsLoopback() && !c.Insecure {
		return fmt.Errorf("gossip bind address %s is not loopback: set encrypt_key or keyring_file, or write 'insecure' to gossip in clear text", c.BindAddr)
	}
	return nil
}

// memberlistConfig returns the memberlist timing for a profile name.
//
// On a LAN, gossip goes uncompressed: memberlist compresses every packet
// with a fresh LZW writer (a 64 KB table) to save a few hundred bytes a
// LAN does not miss, and a join storm sends thousands of packets a second.
func memberlistConfig(profile string) (*memberlist.Config, error) {
	switch profile {
	case "", "lan":
		mc := memberlist.DefaultLANConfig()
		mc.EnableCompression = false
		return mc, nil
	case "wan":
		return memberlist.DefaultWANConfig(), nil
	case "fast":
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
	return nil, fmt.Errorf("unknown gossip profile %q: want lan, fast or wan", profile)
}

// DecodeKey decodes a base64 gossip key.
func DecodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	if err := memberlist.ValidateKey(k); err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	return k, nil
}

// LoadKeyring reads a serf keyring file: a JSON array of base64 keys, the
// first one primary.
func LoadKeyring(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(raw, &encoded); err != nil {
		return nil, fmt.Errorf("keyring %s: want a JSON array of base64 keys: %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("keyring %s holds no key", path)
	}
	keys := make([][]byte, 0, len(encoded))
	for i, s := range encoded {
		k, err := DecodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("keyring %s, key %d: %w", path, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
