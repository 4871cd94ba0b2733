//go:build linux

package main

import (
	"fmt"
	"strings"
)

// vipa is the distributed address; every 127.0.0.0/8 address is local on
// Linux, so no set-up is needed.
const vipa = "127.0.0.100"

// caddyfile is a node's config with the defaults a user gets: no listener
// interval (100 ms), and no profile line for "lan" (serf's LAN timing).
func (n *node) caddyfile(f *fleet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n", n.admin)
	if f.debug {
		b.WriteString("\tdebug\n")
	}
	b.WriteString("\tvipadynamic {\n")
	fmt.Fprintf(&b, "\t\tnode %s\n\t\tadvertise %s\n", n.name, n.ip)
	fmt.Fprintf(&b, "\t\tgossip %s:%d {\n", n.ip, f.gossip)
	if n != f.routing() {
		fmt.Fprintf(&b, "\t\t\tjoin %s:%d\n", f.routing().ip, f.gossip)
	}
	fmt.Fprintf(&b, "\t\t\tencrypt_key %s\n", f.key)
	if f.profile != "lan" {
		fmt.Fprintf(&b, "\t\t\tprofile %s\n", f.profile)
	}
	b.WriteString("\t\t}\n")
	if n != f.routing() {
		b.WriteString("\t}\n}\n")
		return b.String()
	}
	fmt.Fprintf(&b, "\t\tvipadistribute define %s port %d destip all\n\t}\n", vipa, f.port)
	fmt.Fprintf(&b, "\tlayer4 {\n\t\t%s:%d {\n\t\t\troute {\n\t\t\t\tdistribute\n\t\t\t}\n\t\t}\n\t}\n}\n", vipa, f.port)
	return b.String()
}
