package serfsync

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// netTransport is memberlist's NetTransport for one bind address, except
// that a received packet costs a copy of its own length: NetTransport
// allocates and zeroes 64 KB for every packet, which during a join storm of
// a hundred agents sharing two cores is most of the garbage collector's work.
type netTransport struct {
	tcp    *net.TCPListener
	udp    *net.UDPConn
	logger *log.Logger

	packets chan *memberlist.Packet
	streams chan net.Conn
	closed  atomic.Bool
	wg      sync.WaitGroup
}

const (
	maxPacket     = 65536           // the largest UDP payload
	udpRecvBuffer = 2 * 1024 * 1024 // asked of the kernel, halved until granted
)

// newNetTransport binds TCP and UDP on addr; port 0 picks a port free for
// TCP and takes the same for UDP.
func newNetTransport(addr net.IP, port int, logger *log.Logger) (*netTransport, error) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: addr, Port: port})
	if err != nil {
		return nil, err
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr, Port: port})
	if err != nil {
		_ = tcp.Close()
		return nil, err
	}
	for size := udpRecvBuffer; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t := &netTransport{
		tcp:     tcp,
		udp:     udp,
		logger:  logger,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
	}
	t.wg.Add(2)
	go t.acceptStreams()
	go t.readPackets()
	return t, nil
}

// port is the port bound, TCP and UDP alike.
func (t *netTransport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is the configured address, or the bound one.
func (t *netTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		return t.tcp.Addr().(*net.TCPAddr).IP, t.port(), nil
	}
	a := net.ParseIP(ip)
	if a == nil {
		return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
	}
	if a4 := a.To4(); a4 != nil {
		a = a4
	}
	return a, port, nil
}

func (t *netTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *netTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

func (t *netTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *netTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *netTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

// Accepts reports whether addr's TCP port accepts a connection within
// timeout, as the kernel sees it (portAccepts).
func (t *netTransport) Accepts(addr netip.AddrPort, timeout time.Duration) error {
	return portAccepts(addr, timeout)
}

func (t *netTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes both sockets and waits for the readers; memberlist keeps
// taking what they hand over until this returns.
func (t *netTransport) Shutdown() error {
	t.closed.Store(true)
	err := errors.Join(t.tcp.Close(), t.udp.Close())
	t.wg.Wait()
	return err
}

// readPackets reads into one buffer and hands memberlist an exact copy.
func (t *netTransport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if t.closed.Load() {
				return
			}
			t.logger.Printf("[ERR] memberlist: Error reading UDP packet: %v", err)
			continue
		}
		if n < 1 {
			continue
		}
		t.packets <- &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: now}
	}
}

// acceptStreams hands accepted connections to memberlist, backing off on
// errors as memberlist's transport does.
func (t *netTransport) acceptStreams() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closed.Load() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.logger.Printf("[ERR] memberlist: Error accepting TCP connection: %v", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.streams <- c
	}
}

var _ memberlist.NodeAwareTransport = (*netTransport)(nil)
