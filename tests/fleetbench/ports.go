package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// portPicker hands out ports below the kernel's ephemeral range, so the
// connections a run makes never take a port the fleet is about to bind.
type portPicker struct {
	lo, hi int
	used   map[int]bool
}

func newPortPicker() *portPicker {
	hi := 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				hi = v - 1
			}
		}
	}
	pp := &portPicker{lo: 10000, hi: hi, used: map[int]bool{}}
	if pp.hi-pp.lo < 1000 {
		pp.lo, pp.hi = 1024, 65535 // unusual range: take our chances
	}
	return pp
}

// pick returns a port free for TCP and UDP on every given IPv4 address
// (gossip uses both).
func (pp *portPicker) pick(ips ...string) (int, error) {
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
