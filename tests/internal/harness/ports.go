//go:build linux

package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// PortPicker hands out ports below the kernel's ephemeral range, so the
// many outgoing connections of a run never take a port about to be bound.
type PortPicker struct {
	lo, hi int
	used   map[int]bool
}

// NewPortPicker reads the ephemeral range and picks below it.
func NewPortPicker() *PortPicker {
	hi := 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				hi = v - 1
			}
		}
	}
	pp := &PortPicker{lo: 10000, hi: hi, used: map[int]bool{}}
	if pp.hi-pp.lo < 1000 {
		pp.lo, pp.hi = 1024, 65535 // unusual range: take our chances
	}
	return pp
}

// Pick returns a port free for TCP and UDP (gossip uses both) on every
// given IPv4 address, never the same twice.
func (pp *PortPicker) Pick(ips ...string) (int, error) {
	for range 500 {
		p := pp.lo + rand.IntN(pp.hi-pp.lo+1)
		if pp.used[p] || !freeOn(p, ips) {
			continue
		}
		pp.used[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d on %v", pp.lo, pp.hi, ips)
}

func freeOn(port int, ips []string) bool {
	for _, ip := range ips {
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return false
		}
		ln.Close()
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return false
		}
		pc.Close()
	}
	return true
}
