package module

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// testHandler is a distribute handler over a fresh fleet state that routes
// the VIPA of vipaLn.
func testHandler(t *testing.T, vipaLn net.Listener) (*Handler, *fleet.Fleet, netip.AddrPort) {
	t.Helper()
	va := vipaLn.Addr().(*net.TCPAddr).AddrPort()
	f := fleet.New()
	def := &vipa.Definition{
		VIPA:        va.Addr(),
		Ports:       vipa.PortSet{{Lo: va.Port(), Hi: va.Port()}},
		DestIP:      []string{vipa.DestAll},
		Distmethod:  vipa.RoundRobin,
		RoutingNode: "a",
	}
	f.Configure(fleet.Config{Node: "a", Defs: []*vipa.Definition{def}, Listeners: vipa.ListenersOff})
	h := &Handler{fleet: f, MaxAttempts: 3, DialTimeout: caddy.Duration(time.Second), logger: zap.NewNop()}
	return h, f, va
}

// setRow puts one row in the DPT: the only one of its node.
func setRow(f *fleet.Fleet, r tables.Row) { f.DPT.Replace(r.Node, []tables.Row{r}) }

// through accepts one client on ln and hands it to h the way a layer4
// server does, with prefetched bytes, and returns the client's side and
// what Handle returned. The server side is closed when Handle is back.
func through(t *testing.T, h *Handler, ln net.Listener, prefetched []byte) (net.Conn, <-chan error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		cx := layer4.WrapConnection(c, prefetched, zap.NewNop())
		done <- h.Handle(cx, nil)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, done
}

// backend answers each connection with its name and then echoes.
func backend(t *testing.T, name string) (net.Listener, netip.AddrPort) {
	t.Helper()
	return serveTCP(t, func(c net.Conn) {
		_, _ = io.WriteString(c, name)
		_, _ = io.Copy(c, c)
	})
}

// serveTCP listens on loopback and runs serve for each connection, which
// is closed when serve returns.
func serveTCP(t *testing.T, serve func(net.Conn)) (net.Listener, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln, ln.Addr().(*net.TCPAddr).AddrPort()
}

func listenVIPA(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.100:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestHandlerSkipsDeadTargets(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	_, live := backend(t, "B")
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().(*net.TCPAddr).AddrPort()
	dead.Close() // nothing listens there any more: dials are refused
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "a", Address: deadAddr, Ready: 1})
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "b", Address: live, Ready: 1})

	for i := range 6 {
		c, done := through(t, h, vln, nil)
		buf := make([]byte, 1)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'B' {
			t.Fatalf("connection %d: got %q, %v; want the live target", i, buf, err)
		}
		c.Close()
		if err := <-done; err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	waitCRTEmpty(t, f)
	for _, r := range f.DPT.Rows() {
		if r.ActiveConns != 0 {
			t.Fatalf("row %s still counts %d active", r.Node, r.ActiveConns)
		}
		if r.Node == "b" && r.TotalConns != 6 {
			t.Fatalf("live target routed %d, want 6", r.TotalConns)
		}
	}
}

func TestHandlerClosesWithoutCandidate(t *testing.T) {
	vln := listenVIPA(t)
	h, _, _ := testHandler(t, vln)
	c, done := through(t, h, vln, nil)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read %d, %v; want EOF at once", n, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHandlerClosesWhenNoTargetAnswers: with its only target refusing,
// each client is closed and counted; the row turns unhealthy once, logged
// and counted once however many clients dial it afterwards.
func TestHandlerClosesWhenNoTargetAnswers(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	core, logs := observer.New(zapcore.InfoLevel)
	h.logger = zap.New(core)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().(*net.TCPAddr).AddrPort()
	dead.Close()
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "a", Address: deadAddr, Ready: 1})
	const clients = 5
	for i := range clients {
		c, done := through(t, h, vln, nil)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("client %d: read %d, %v; want EOF", i, n, err)
		}
		<-done
	}
	if f.CRT.Len() != 0 {
		t.Fatal("a failed route left a CRT entry")
	}
	if n := f.Counters.DialFailures.Load(); n != clients {
		t.Errorf("%d failed dials, want one per client (%d)", n, clients)
	}
	if n := f.Counters.HealthDown.Load(); n != 1 {
		t.Errorf("health_transitions_total{to=unhealthy} %d, want 1", n)
	}
	if n := logs.FilterMessageSnippet("target unhealthy").Len(); n != 1 {
		t.Errorf("the transition logged %d times for %d clients, want once", n, clients)
	}
	if r := f.DPT.Rows(); len(r) != 1 || r[0].Health != tables.Unhealthy {
		t.Errorf("rows %+v, want the one row unhealthy", r)
	}
}

func TestHandlerSendsPrefetchedBytesFirst(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	_, live := backend(t, "B")
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "b", Address: live, Ready: 1})
	c, done := through(t, h, vln, []byte("pre-"))
	_, _ = io.WriteString(c, "rest")
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "Bpre-rest" {
		t.Fatalf("got %q, %v; want %q", got, err, "Bpre-rest")
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHandlerCRTEntryWhileOpen(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	_, live := backend(t, "B")
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "b", Address: live, Ready: 1})
	c, done := through(t, h, vln, nil)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// Handle is back while the connection is open: the relay runs without
	// it, and the entry stays until the end.
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Handle still holds its goroutine while the relay runs")
	}
	if _, err := io.WriteString(c, "echo"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "echo" {
		t.Fatalf("after Handle returned: got %q, %v; want the echo", got, err)
	}
	var entries []*tables.Entry
	f.CRT.Range(func(e *tables.Entry) bool {
		if e.Client.String() != c.LocalAddr().String() || e.VIPA != vipa.Addr() || e.Port != vipa.Port() || e.Target.Node != "b" {
			t.Errorf("entry %+v", e)
		}
		entries = append(entries, e)
		return true
	})
	if len(entries) != 1 {
		t.Fatalf("CRT has %d entries, want 1", len(entries))
	}
	c.Close()
	waitCRTEmpty(t, f)
	ended := logs.FilterMessage("connection ended").AllUntimed()
	if len(ended) != 1 {
		t.Fatalf("%d \"connection ended\" lines, want 1", len(ended))
	}
	fields := ended[0].ContextMap()
	if ended[0].Level != zapcore.DebugLevel || fields["client"] != c.LocalAddr().String() ||
		fields["node"] != "b" || fields["bytes_to_target"] != int64(4) || fields["bytes_to_client"] != int64(5) ||
		fields["duration"].(time.Duration) <= 0 {
		t.Fatalf("connection ended: %v %v", ended[0].Level, fields)
	}
}

// waitCRTEmpty waits for the relays' pollers to end their connections and
// release every CRT entry.
func waitCRTEmpty(t *testing.T, f *fleet.Fleet) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for f.CRT.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("CRT holds %d entries after every connection ended", f.CRT.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHandlerIdleTimeout: an idle connection is closed after the timeout,
// its CRT entry released, and that is no error.
func TestHandlerIdleTimeout(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	h.IdleTimeout = caddy.Duration(100 * time.Millisecond)
	_, live := backend(t, "B")
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "b", Address: live, Ready: 1})
	c, done := through(t, h, vln, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if got, err := io.ReadAll(c); err != nil || string(got) != "B" {
		t.Fatalf("read %q, %v; want the greeting, then the close", got, err)
	}
	waitCRTEmpty(t, f)
	if n := logs.FilterMessage("idle timeout: connection closed").Len(); n != 1 {
		t.Fatalf("%d idle-timeout debug lines, want 1", n)
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 0 {
		t.Fatalf("an idle timeout logged %d errors", n)
	}
}

// TestHandlerSkipsItsOwnAddress: a layer4 server that listens where the
// listener watch looks for applications makes its own socket a DPT row;
// a connection that arrived on that row's address is never routed back to
// it, or it would loop through this handler for ever.
func TestHandlerSkipsItsOwnAddress(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	core, logs := observer.New(zapcore.InfoLevel)
	h.logger = zap.New(core)
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "a", Address: vipa, Ready: 1})

	// Only itself: refused at once, nothing dialed.
	c, done := through(t, h, vln, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read %d, %v; want the connection closed", n, err)
	}
	if n := logs.FilterMessage("connection refused: the only target is this listener itself").Len(); n != 1 {
		t.Fatalf("%d refusals logged, want 1", n)
	}
	if f.Counters.NoTarget.Load() != 1 || f.Counters.DialFailures.Load() != 0 {
		t.Fatalf("no_target %d, dial failures %d", f.Counters.NoTarget.Load(), f.Counters.DialFailures.Load())
	}

	// With another target, every connection goes there, whichever row the
	// distmethod starts from.
	_, live := backend(t, "B")
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "b", Address: live, Ready: 1})
	for range 3 {
		c, done := through(t, h, vln, nil)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		got := make([]byte, 1)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "B" {
			t.Fatalf("read %q, %v; want B's greeting", got, err)
		}
		c.Close()
	}
	waitCRTEmpty(t, f)
	if n := logs.FilterMessage("a connection arrived on a target's own address; that target is skipped").Len(); n != 1 {
		t.Fatalf("%d skip lines, want 1 (logged once)", n)
	}
}

// TestIsPeerGone: a peer that closed or reset its side ends the relay
// ordinarily, however the relay's last call met it; anything else is a
// failure.
func TestIsPeerGone(t *testing.T) {
	for _, c := range []struct {
		err  error
		gone bool
	}{
		{io.EOF, true},
		{net.ErrClosed, true},
		{fmt.Errorf("relay: client: splice: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("relay: client: splice: %w", syscall.EPIPE), true},
		// The client read its line and reset before the target's FIN was
		// passed on: shutting down the client's writing half is refused.
		{fmt.Errorf("relay: client: shutdown: %w", syscall.ENOTCONN), true},
		{fmt.Errorf("relay: target: splice: %w", syscall.ENOMEM), false},
		{fmt.Errorf("relay: target: %w", syscall.ETIMEDOUT), false},
	} {
		if got := isPeerGone(c.err); got != c.gone {
			t.Errorf("isPeerGone(%v) = %v, want %v", c.err, got, c.gone)
		}
	}
}
