package module

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/sys/unix"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// unanswered returns an address whose accept queue is full: the kernel
// drops each SYN, so a dial there can only time out.
func unanswered(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil { // never accepts
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	in := sa.(*unix.SockaddrInet4)
	addr := netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
	for range 4 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the kernel completed handshakes past a full accept queue")
	return addr
}

// rowOf returns the DPT row of node.
func rowOf(f interface{ Rows() []tables.Row }, node string) tables.Row {
	for _, r := range f.Rows() {
		if r.Node == node {
			return r
		}
	}
	return tables.Row{}
}

// TestHandlerCRTEntryWhileDialing: the CRT entry is inserted when the
// target is selected, before the dial (claim 12's order): a connection
// whose target does not answer its SYN shows in the CRT and counts in the
// row's active connections until the dial gives up, and then leaves both.
func TestHandlerCRTEntryWhileDialing(t *testing.T) {
	vln := listenVIPA(t)
	h, f, va := testHandler(t, vln)
	h.DialTimeout = caddy.Duration(2 * time.Second)
	silent := unanswered(t)
	setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: "s", Address: silent, Ready: 1})

	c, done := through(t, h, vln, nil)
	deadline := time.Now().Add(time.Duration(h.DialTimeout))
	for f.CRT.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no CRT entry while the target was being dialed")
		}
		time.Sleep(time.Millisecond)
	}
	var seen []string
	f.CRT.Range(func(e *tables.Entry) bool {
		seen = append(seen, e.Target.Node+" "+e.Client.String())
		return true
	})
	if len(seen) != 1 || seen[0] != "s "+c.LocalAddr().String() {
		t.Fatalf("CRT while dialing: %q, want the client on s", seen)
	}
	if r := rowOf(f.DPT, "s"); r.ActiveConns != 1 {
		t.Fatalf("row s counts %d active while dialing, want 1", r.ActiveConns)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.CRT.Len() != 0 || rowOf(f.DPT, "s").ActiveConns != 0 {
		t.Fatalf("after the dial timed out: CRT %d, active %d; want 0, 0", f.CRT.Len(), rowOf(f.DPT, "s").ActiveConns)
	}
}

// TestHandlerRetryMovesEntry: a dial that fails moves the entry to the
// next target; the failed row no longer counts it.
func TestHandlerRetryMovesEntry(t *testing.T) {
	vln := listenVIPA(t)
	h, f, va := testHandler(t, vln)
	h.DialTimeout = caddy.Duration(300 * time.Millisecond)
	_, live := backend(t, "B")
	setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: "a", Address: unanswered(t), Ready: 1})
	setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: "b", Address: live, Ready: 1})
	for range 2 { // round robin starts on a once in two
		c, done := through(t, h, vln, nil)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b := make([]byte, 1); !readByte(c, b) || b[0] != 'B' {
			t.Fatal("no greeting from b")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var on []string
	f.CRT.Range(func(e *tables.Entry) bool {
		on = append(on, e.Target.Node)
		return true
	})
	if len(on) != 2 || on[0] != "b" || on[1] != "b" {
		t.Fatalf("CRT entries on %q, want both on b", on)
	}
	if a, b := rowOf(f.DPT, "a"), rowOf(f.DPT, "b"); a.ActiveConns != 0 || b.ActiveConns != 2 || b.TotalConns != 2 {
		t.Fatalf("a %d active, b %d active %d total; want 0, 2, 2", a.ActiveConns, b.ActiveConns, b.TotalConns)
	}
}

// TestHandlerLeastconnSeesPendingDials: a burst of connections under
// leastconn, with one target that does not answer SYNs and one that does.
// The dials in progress count on the silent target, so the burst spreads
// over both; were they not counted, every connection of the burst would
// pick the silent target (0 active) and wait for its dial timeout.
func TestHandlerLeastconnSeesPendingDials(t *testing.T) {
	vln := listenVIPA(t)
	h, f, va := testHandler(t, vln)
	def := *f.Route(va.Addr()).Def
	def.Distmethod = vipa.LeastConn
	f.Configure(fleet.Config{Node: "a", Defs: []*vipa.Definition{&def}, Listeners: vipa.ListenersOff})
	h.DialTimeout = caddy.Duration(10 * time.Second)
	_, live := backend(t, "B")
	setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: "s", Address: unanswered(t), Ready: 1})
	setRow(f, tables.Row{VIPA: va.Addr(), Port: va.Port(), Node: "b", Address: live, Ready: 1})

	const burst = 8
	greeted := make(chan struct{}, burst)
	var handled []<-chan error
	start := time.Now()
	for range burst {
		c, done := through(t, h, vln, nil)
		handled = append(handled, done)
		go func() {
			_ = c.SetReadDeadline(start.Add(9 * time.Second))
			if b := make([]byte, 1); readByte(c, b) && b[0] == 'B' {
				greeted <- struct{}{}
			}
		}()
	}
	for range burst / 2 {
		select {
		case <-greeted:
		case <-time.After(9*time.Second - time.Since(start)):
			t.Fatalf("fewer than %d of %d connections reached the answering target before the silent one's dial timeout", burst/2, burst)
		}
	}
	if s := rowOf(f.DPT, "s"); s.ActiveConns > burst/2 {
		t.Fatalf("the silent target holds %d pending dials of %d", s.ActiveConns, burst)
	}
	for _, done := range handled { // the silent target's dials time out, then go to b
		<-done
	}
}

func readByte(c net.Conn, b []byte) bool {
	_, err := io.ReadFull(c, b)
	return err == nil
}
