//go:build linux

package vipaif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ForwardTablePrefix begins the name of the nftables table Forward adds
// for a VIPA (family ip or ip6), one per VIPA; Unforward deletes it.
const ForwardTablePrefix = "caddy_vipa_handover_"

// ErrNotOnLink: the old owner's address is not reached directly on the
// VIPA's interface, so its segments cannot be passed to it.
var ErrNotOnLink = errors.New("not on the VIPA's link")

// Forward passes to the VIPA's previous owner, at address to on this
// interface's link, the TCP segments for vipa that belong to no connection
// this node knows, and drops them here: during a hand-over the previous
// owner still holds the address, and a handshake it began (the client's
// SYN went there) or a connection it still has ends there rather than in
// this kernel's reset. SYNs stay here: new connections are this node's.
//
// An nftables table of its own (ForwardTablePrefix and the VIPA), a chain
// at the prerouting hook after conntrack, rules:
//
//	ip daddr VIPA tcp flags & syn == 0 ct state new counter dup to TO device IF drop
//	ip daddr VIPA tcp flags & (fin|rst) != 0 tcp flags & syn == 0 ct state invalid counter dup to TO device IF drop
//
// Conntrack takes up a mid-stream segment of a connection it does not know
// as new (nf_conntrack_tcp_loose, on by default); a FIN or RST it cannot
// take up is invalid. Other invalid segments (one of this node's own
// connections out of its window) stay here: the previous owner would
// answer them with a reset. The copy keeps the client's source and the
// VIPA as destination, so the previous owner answers the client directly.
// Forward of a forwarded VIPA replaces its rules.
func (m *Manager) Forward(vipa, to netip.Addr) error {
	vipa, err := check(vipa)
	if err != nil {
		return err
	}
	to = to.Unmap().WithZone("")
	if !to.IsValid() || to.Is4() != vipa.Is4() {
		return fmt.Errorf("vipa_interface %s: forward %s to %v: %w", m.name, vipa, to, ErrNotOnLink)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ifi, err := net.InterfaceByName(m.name)
	if err != nil {
		return fmt.Errorf("vipa_interface %s: %w", m.name, err)
	}
	if err := onLink(ifi.Index, to); err != nil {
		return fmt.Errorf("vipa_interface %s: forward %s to %s: %w", m.name, vipa, to, err)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("vipa_interface %s: nftables: %w", m.name, err)
	}
	t := forwardTable(vipa)
	// Add, delete and add again in one transaction: an older table of
	// this VIPA (a reload, a killed process's) is replaced at once.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter,
	})
	for _, exprs := range forwardRules(vipa, to, uint32(ifi.Index)) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("vipa_interface %s: forward %s to %s: nftables: %w", m.name, vipa, to, err)
	}
	return nil
}

// Unforward removes vipa's forwarding table, if there is one.
func (m *Manager) Unforward(vipa netip.Addr) error {
	vipa, err := check(vipa)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("vipa_interface %s: nftables: %w", m.name, err)
	}
	t := forwardTable(vipa)
	tables, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return fmt.Errorf("vipa_interface %s: unforward %s: nftables: %w", m.name, vipa, err)
	}
	for _, have := range tables {
		if have.Name == t.Name {
			c.DelTable(t)
			if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("vipa_interface %s: unforward %s: nftables: %w", m.name, vipa, err)
			}
		}
	}
	return nil
}

// forwardTable is vipa's table: family ip or ip6 (dup exists only there).
func forwardTable(vipa netip.Addr) *nftables.Table {
	fam := nftables.TableFamilyIPv4
	if vipa.Is6() {
		fam = nftables.TableFamilyIPv6
	}
	name := ForwardTablePrefix + strings.NewReplacer(".", "_", ":", "_").Replace(vipa.String())
	return &nftables.Table{Name: name, Family: fam}
}

// forwardRules are Forward's two rules, as nft would compile them.
func forwardRules(vipa, to netip.Addr, ifindex uint32) [][]expr.Any {
	daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	if vipa.Is6() {
		daddr = &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	}
	head := []expr.Any{
		daddr,
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vipa.AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
	flags := func(mask byte, op expr.CmpOp) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
			&expr.Cmp{Op: op, Register: 1, Data: []byte{0}},
		}
	}
	state := func(bit uint32) []expr.Any {
		return []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(bit), Xor: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		}
	}
	tail := []expr.Any{
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: to.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.NativeEndian.PutUint32(ifindex)},
		&expr.Dup{RegAddr: 1, RegDev: 2, IsRegDevSet: true},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	const syn, fin, rst = 0x02, 0x01, 0x04
	rule := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	return [][]expr.Any{
		rule(head, flags(syn, expr.CmpOpEq), state(expr.CtStateBitNEW), tail),
		rule(head, flags(fin|rst, expr.CmpOpNeq), flags(syn, expr.CmpOpEq), state(expr.CtStateBitINVALID), tail),
	}
}

// onLink checks that to is reached directly on the interface: no gateway,
// not one of this node's own addresses.
func onLink(ifindex int, to netip.Addr) error {
	routes, err := netlink.RouteGet(to.AsSlice())
	if err != nil {
		return fmt.Errorf("route to it: %w", err)
	}
	if len(routes) == 0 || routes[0].LinkIndex != ifindex || routes[0].Gw != nil || routes[0].Type == unix.RTN_LOCAL {
		return ErrNotOnLink
	}
	return nil
}
