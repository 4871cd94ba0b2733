//go:build linux

// Package netlab builds a LAN of network namespaces for the end-to-end
// tests and measurements of VIPA takeover: a bridge in a namespace of its
// own, one namespace per Caddy node and one for the client, each joined to
// the bridge by a veth pair. Everything it makes carries the lab's unique
// name and goes with Close.
package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
)

// ErrUnavailable: this system cannot make network namespaces (not root, no
// iproute2, no namespaces); tests skip with its message.
var ErrUnavailable = errors.New("network namespaces unavailable")

// Subnet is the lab's LAN; hosts get .11, .12, … and the client .50.
var Subnet = netip.MustParsePrefix("192.0.2.0/24")

// VIPA is the address the lab's tests move between nodes.
var VIPA = netip.MustParseAddr("192.0.2.100")

// Subnet6 is the lab's IPv6 LAN beside Subnet: host .11 is ::11, the
// client ::50; VIPA6 is the IPv6 VIPA. The addresses are added without
// duplicate address detection (nodad), so they are usable at once.
var (
	Subnet6 = netip.MustParsePrefix("fd00:192:0:2::/64")
	VIPA6   = netip.MustParseAddr("fd00:192:0:2::100")
)

// Dev is every host's interface on the LAN, inside its namespace.
const Dev = "eth0"

const prefix = "vipalab-"

// Lab is one LAN of namespaces.
type Lab struct {
	ID     string // unique: prefix, pid, sequence
	Switch string // namespace of the bridge
	Nodes  []*Host
	Client *Host
}

// Host is one namespace on the LAN.
type Host struct {
	Name string     // "a", "b", …, "client"
	NS   string     // namespace name
	IP   netip.Addr // its address on the LAN
	IP6  netip.Addr // its IPv6 address on the LAN
	MAC  string     // of Dev
	port string     // its veth's bridge end, in the switch namespace
	lab  *Lab
}

var seq atomic.Int32

// New makes a lab with the named nodes and a client. Node namespaces let
// a server bind an address the node does not hold yet
// (ip_nonlocal_bind), as a backup's layer4 server listens on the VIPA
// before it owns it.
func New(nodes ...string) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: needs root (CI runs as root)", ErrUnavailable)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: no ip command (iproute2)", ErrUnavailable)
	}
	sweep()
	l := &Lab{ID: fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))}
	l.Switch = l.ID + "-sw"
	if err := ip("netns", "add", l.Switch); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	err := l.build(nodes)
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) build(nodes []string) error {
	steps := [][]string{
		{"-n", l.Switch, "link", "add", "br0", "type", "bridge"},
		{"-n", l.Switch, "link", "set", "br0", "up"},
	}
	if err := run(steps); err != nil {
		return err
	}
	base := Subnet.Addr().As4()
	for i, name := range nodes {
		base[3] = byte(11 + i)
		h, err := l.host(name, netip.AddrFrom4(base), i)
		if err != nil {
			return err
		}
		for _, k := range []string{"net.ipv4.ip_nonlocal_bind=1", "net.ipv6.ip_nonlocal_bind=1"} {
			if err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-qw", k).Run(); err != nil {
				return fmt.Errorf("sysctl %s in %s: %w", k, h.NS, err)
			}
		}
		l.Nodes = append(l.Nodes, h)
	}
	base[3] = 50
	c, err := l.host("client", netip.AddrFrom4(base), len(nodes))
	if err != nil {
		return err
	}
	l.Client = c
	return nil
}

// host makes a namespace joined to the bridge with ip on Dev.
func (l *Lab) host(name string, addr netip.Addr, i int) (*Host, error) {
	v6 := Subnet6.Addr().As16()
	v6[15] = byte(addr.As4()[3]/10*16 + addr.As4()[3]%10) // .11 is ::11
	h := &Host{Name: name, NS: l.ID + "-" + name, IP: addr, IP6: netip.AddrFrom16(v6), port: "p" + strconv.Itoa(i), lab: l}
	steps := [][]string{
		{"netns", "add", h.NS},
		{"-n", l.Switch, "link", "add", h.port, "type", "veth", "peer", "name", Dev, "netns", h.NS},
		{"-n", l.Switch, "link", "set", h.port, "master", "br0", "up"},
		{"-n", h.NS, "addr", "add", netip.PrefixFrom(addr, Subnet.Bits()).String(), "dev", Dev},
		{"-n", h.NS, "addr", "add", netip.PrefixFrom(h.IP6, Subnet6.Bits()).String(), "dev", Dev, "nodad"},
		{"-n", h.NS, "link", "set", Dev, "up"},
		{"-n", h.NS, "link", "set", "lo", "up"},
	}
	if err := run(steps); err != nil {
		return nil, err
	}
	mac, err := readMAC(h.NS)
	if err != nil {
		return nil, err
	}
	h.MAC = mac
	return h, nil
}

// Node is the node named name, or nil.
func (l *Lab) Node(name string) *Host {
	for _, h := range l.Nodes {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Close deletes the lab's namespaces, and with them its bridge and veths.
// Processes still running in them keep theirs alive: stop them first.
func (l *Lab) Close() error {
	var errs []error
	hosts := append([]*Host{l.Client}, l.Nodes...)
	for _, h := range hosts {
		if h != nil {
			errs = append(errs, ip("netns", "del", h.NS))
		}
	}
	errs = append(errs, ip("netns", "del", l.Switch))
	return errors.Join(errs...)
}

// Cut takes the host's link to the bridge down (a partition); Heal brings
// it back.
func (h *Host) Cut() error  { return ip("-n", h.lab.Switch, "link", "set", h.port, "down") }
func (h *Host) Heal() error { return ip("-n", h.lab.Switch, "link", "set", h.port, "up") }

// Command runs argv inside the host's namespace.
func (h *Host) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS}, argv...)...)
}

// sweep deletes the namespaces of labs whose process is gone (a test
// killed before its cleanup ran).
func sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() {
			if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
				_ = ip("netns", "del", name)
			}
		}
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func run(steps [][]string) error {
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// Lose drops percent of the packets the host sends to peer (nftables in
// the host's namespace, for that destination only; 100 cuts it): with
// peer.Lose(h, …) too, the link between the two is lossy while each
// reaches every other host as before. One peer at a time: calling it
// again replaces the peer and the rate.
// Needs nft (the kernel here has no netem for tc).
func (h *Host) Lose(peer *Host, percent int) error {
	rule := fmt.Sprintf("ip daddr %s numgen random mod 100 < %d drop", peer.IP, percent)
	if percent >= 100 {
		rule = fmt.Sprintf("ip daddr %s drop", peer.IP)
	}
	script := "table inet vipalab\ndelete table inet vipalab\n" +
		"table inet vipalab {\n\tchain out {\n\t\ttype filter hook output priority 0;\n\t\t" + rule + "\n\t}\n}\n"
	cmd := exec.Command("ip", "netns", "exec", h.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", h.NS, err, strings.TrimSpace(string(out)))
	}
	return nil
}
