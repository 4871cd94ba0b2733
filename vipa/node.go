package vipa

import (
	"errors"
	"fmt"
	"net/netip"
)

// Bounds serf, memberlist and the fleet's wire put on names.
const (
	// MaxNodeName is serf's limit on a node name (with name validation on,
	// as the fleet runs it) and the wire's.
	MaxNodeName = 128
	// MaxLabel is memberlist's limit on a gossip label, and the state
	// channel's.
	MaxLabel = 255
)

// ValidateNodeName checks a serf node name: 1 to MaxNodeName letters,
// digits, '-' and '.', which is what serf admits.
func ValidateNodeName(name string) error {
	if name == "" {
		return errors.New("node name is empty")
	}
	if len(name) > MaxNodeName {
		return fmt.Errorf("node name is %d characters: at most %d", len(name), MaxNodeName)
	}
	for _, c := range []byte(name) {
		if !nameByte(c) {
			return fmt.Errorf("node name %q: want letters, digits, '-' and '.'", name)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// ValidateLabel checks a gossip label; empty means the default.
func ValidateLabel(label string) error {
	if len(label) > MaxLabel {
		return fmt.Errorf("label is %d bytes: at most %d", len(label), MaxLabel)
	}
	return nil
}

// ParseAdvertise parses a node's advertise address: the unicast address
// other nodes dial for this host's applications.
func ParseAdvertise(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid advertise address %q: want an IP address", s)
	}
	if !unicast(a) {
		return netip.Addr{}, fmt.Errorf("invalid advertise address %q: want a unicast address other nodes can dial", s)
	}
	return a.Unmap(), nil
}

// ParseVIPA parses a distributed virtual IP address, which must be unicast.
func ParseVIPA(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || !unicast(a) {
		return netip.Addr{}, fmt.Errorf("invalid VIPA %q: want a unicast IP address", s)
	}
	return a.Unmap(), nil
}

func unicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a.Unmap() != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
