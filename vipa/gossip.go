package vipa

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Gossip timing profiles.
const (
	ProfileLAN  = "lan"
	ProfileFast = "fast"
	ProfileWAN  = "wan"
)

// Profiles lists the gossip profiles, the default first.
var Profiles = []string{ProfileLAN, ProfileFast, ProfileWAN}

// ParseProfile checks a profile name; "" is lan.
func ParseProfile(name string) (string, error) {
	switch name {
	case "", ProfileLAN:
		return ProfileLAN, nil
	case ProfileFast, ProfileWAN:
		return name, nil
	}
	return "", fmt.Errorf("unknown gossip profile %q: want lan, fast or wan", name)
}

// KeySource checks that at most one of a keyring file and a key is given.
func KeySource(keyringFile, encryptKey string) error {
	if keyringFile != "" && encryptKey != "" {
		return errors.New("gossip: keyring_file and encrypt_key are exclusive")
	}
	return nil
}

// DecodeKey decodes a base64 gossip key of 16, 24 or 32 bytes (AES-128,
// -192 or -256, as memberlist takes them).
func DecodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("gossip key: %d bytes, want 16, 24 or 32", len(k))
}

// LoadKeyring reads a serf keyring file: a JSON array of base64 keys, the
// first one primary. Its errors name the option and the file; one that is
// not there is fs.ErrNotExist.
func LoadKeyring(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once
		}
		return nil, fmt.Errorf("keyring_file %s: %w", path, err)
	}
	var encoded []string
	if err := json.Unmarshal(raw, &encoded); err != nil {
		return nil, fmt.Errorf("keyring_file %s: want a JSON array of base64 keys: %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("keyring_file %s holds no key", path)
	}
	keys := make([][]byte, 0, len(encoded))
	for i, s := range encoded {
		k, err := DecodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("keyring_file %s, key %d: %w", path, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// DefaultLabel is the gossip label of a fleet that names none.
const DefaultLabel = "caddy-vipa"

// ValidateGossip checks that gossip on bind is encrypted unless it stays on
// loopback or the operator wrote insecure.
func ValidateGossip(bind netip.AddrPort, keyed, insecure bool) error {
	if !keyed && !bind.Addr().IsLoopback() && !insecure {
		return fmt.Errorf("gossip bind address %s is not loopback: set encrypt_key or keyring_file, or write 'insecure' to gossip in clear text", bind)
	}
	return nil
}

// AdvertiseFor returns a node's advertise address: the configured one, or
// else the gossip bind address, which must then not be a wildcard.
func AdvertiseFor(bind netip.AddrPort, advertise string) (netip.Addr, error) {
	if advertise != "" {
		return ParseAdvertise(advertise)
	}
	if bind.Addr().IsUnspecified() {
		return netip.Addr{}, errors.New("advertise address is required when gossip binds the wildcard address")
	}
	return ParseAdvertise(bind.Addr().String())
}

// ValidateJoin checks a member's gossip address to join: host:port, the
// host an IP literal or a DNS name. Names are resolved at each join attempt,
// so a member that moves is found again.
func ValidateJoin(s string) error {
	_, err := hostPort("join address", s)
	return err
}

// ValidateBind checks a gossip bind address: host:port, the host an IP
// literal or a DNS name, which ResolveBind resolves when the agent starts.
func ValidateBind(s string) error {
	_, err := hostPort("gossip address", s)
	return err
}

// ResolveBind returns the one address gossip binds: the IP literal, or the
// name's first IPv4 address, else its first IPv6 one.
func ResolveBind(ctx context.Context, s string) (netip.AddrPort, error) {
	host, err := hostPort("gossip address", s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	_, port, _ := net.SplitHostPort(s)
	p, _ := strconv.ParseUint(port, 10, 16)
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("gossip address %q: %w", s, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("gossip address %q: %q has no address", s, host)
	}
	pick := addrs[0].Unmap()
	for _, a := range addrs {
		if a.Unmap().Is4() {
			pick = a.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(pick, uint16(p)), nil
}

// hostPort checks host:port, the host an IP literal or a DNS name, the port
// 1-65535, and returns the host.
func hostPort(what, s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%s %q: want host:port", what, s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("%s %q: port %q: want 1-65535", what, s, port)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host, nil
	}
	if !validHostName(host) {
		return "", fmt.Errorf("%s %q: host %q is neither an IP address nor a DNS name", what, s, host)
	}
	return host, nil
}

// validHostName reports whether s is a DNS name: dot-separated labels of
// letters, digits and inner hyphens, 253 bytes at most.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
