//go:build linux

package netlab

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Admin is every lab node's admin endpoint, inside its own namespace;
// Port is the VIPA's distributed port; GossipPort is serf's.
const (
	Admin      = "127.0.0.1:2019"
	Port       = 8080
	GossipPort = 7946
)

// Key is the lab fleet's gossip key.
const Key = "3k7VBm6mYxT6kzF8xj0s0m9cRSuqkC3QfWzE4u8i5Bw="

// Node describes one lab node's Caddyfile.
type Node struct {
	Host *Host
	Seed *Host // joined at start; itself for the first node
	// Peers are joined too, as in a fleet whose nodes list each other: a
	// restarted node then finds the fleet at once.
	Peers []*Host
	// Fast selects serf's fast profile; otherwise the default (LAN).
	Fast bool
	// Interface: the node manages the VIPA's address on Dev.
	Interface bool
	// Define makes the node the VIPA's routing node.
	Define bool
	// Rank > 0 makes it a backup of that rank, with Takeback ("" for the
	// default) and MaxWait ("" for the default).
	Rank              int
	Takeback, MaxWait string
	// Layer4 listens on the VIPA's port and routes it.
	Layer4 bool
	// VIPA is the VIPA defined, backed up and listened on; invalid: the
	// lab's VIPA.
	VIPA netip.Addr
	// Distribute, when set, is the body of the definition's block (one
	// option a line, e.g. "destip caddy-b weight 3"); otherwise the
	// definition is destip all.
	Distribute []string
}

// Addr is the node's VIPA.
func (n Node) Addr() netip.Addr {
	if n.VIPA.IsValid() {
		return n.VIPA
	}
	return VIPA
}

// Caddyfile is the node's configuration.
func (n Node) Caddyfile() string {
	var b strings.Builder
	h := n.Host
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tvipadynamic {\n\t\tnode caddy-%s\n\t\tadvertise %s\n", Admin, h.Name, h.IP)
	if n.Interface {
		fmt.Fprintf(&b, "\t\tvipa_interface %s\n", Dev)
	}
	fmt.Fprintf(&b, "\t\tgossip %s:%d {\n", h.IP, GossipPort)
	if n.Fast {
		b.WriteString("\t\t\tprofile fast\n")
	}
	fmt.Fprintf(&b, "\t\t\tjoin %s:%d", n.Seed.IP, GossipPort)
	for _, p := range n.Peers {
		fmt.Fprintf(&b, " %s:%d", p.IP, GossipPort)
	}
	fmt.Fprintf(&b, "\n\t\t\tencrypt_key %s\n\t\t}\n", Key)
	b.WriteString("\t\tlisteners auto {\n\t\t\tinterval 50ms\n\t\t}\n")
	switch {
	case n.Define && len(n.Distribute) > 0:
		fmt.Fprintf(&b, "\t\tvipadistribute define %s port %d {\n", n.Addr(), Port)
		for _, line := range n.Distribute {
			fmt.Fprintf(&b, "\t\t\t%s\n", line)
		}
		b.WriteString("\t\t}\n")
	case n.Define:
		fmt.Fprintf(&b, "\t\tvipadistribute define %s port %d destip all\n", n.Addr(), Port)
	}
	if n.Rank > 0 {
		fmt.Fprintf(&b, "\t\tvipabackup %s rank %d", n.Addr(), n.Rank)
		if n.Takeback != "" || n.MaxWait != "" {
			b.WriteString(" {\n")
			if n.Takeback != "" {
				fmt.Fprintf(&b, "\t\t\ttakeback %s\n", n.Takeback)
			}
			if n.MaxWait != "" {
				fmt.Fprintf(&b, "\t\t\tmax_wait %s\n", n.MaxWait)
			}
			b.WriteString("\t\t}")
		}
		b.WriteString("\n")
	}
	b.WriteString("\t}\n")
	if n.Layer4 {
		fmt.Fprintf(&b, "\tlayer4 {\n\t\t%s {\n\t\t\troute {\n\t\t\t\tdistribute\n\t\t\t}\n\t\t}\n\t}\n", netip.AddrPortFrom(n.Addr(), Port))
	}
	b.WriteString("}\n")
	return b.String()
}

// HTTPClient talks HTTP to servers inside the host's namespace, such as
// its Caddy's admin endpoint at Admin.
func (h *Host) HTTPClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       h.Dial,
		DisableKeepAlives: true,
	}}
}

// VIPAPrefix is the VIPA as the address manager adds it.
func VIPAPrefix() string { return HostPrefix(VIPA) }

// HostPrefix is a as the address manager adds it: /32 or /128.
func HostPrefix(a netip.Addr) string { return fmt.Sprintf("%s/%d", a, a.BitLen()) }
