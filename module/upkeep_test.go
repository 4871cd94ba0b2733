package module

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
)

// deadAddr is a loopback address nothing listens on: dials are refused.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return a
}

// greeting routes one connection through h and returns the first byte the
// target sent, or "" when the client was closed.
func greeting(t *testing.T, h *Handler, vln net.Listener) string {
	t.Helper()
	c, done := through(t, h, vln, nil)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	n, _ := io.ReadFull(c, b)
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// TestHandlerDeadRowsAhead: four refusing rows sort before the live one
// and max_attempts is 1; no client is closed, and once the dead rows are
// unhealthy no client dials them any more.
func TestHandlerDeadRowsAhead(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	h.MaxAttempts = 1
	_, live := backend(t, "E")
	for _, n := range []string{"a", "b", "c", "d"} {
		setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: n, Address: deadAddr(t), Ready: 1})
	}
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "e", Address: live, Ready: 1})
	for i := range 20 {
		if got := greeting(t, h, vln); got != "E" {
			t.Fatalf("connection %d: got %q, want the live target", i, got)
		}
	}
	for _, r := range f.DPT.Rows() {
		if r.Node != "e" && (r.Health != tables.Unhealthy || r.TSR > 90) {
			t.Errorf("dead row %s: %v, TSR %d", r.Node, r.Health, r.TSR)
		}
	}
	// Two refusals each make the four rows unhealthy; then they are skipped.
	if n := f.Counters.DialFailures.Load(); n > 8 {
		t.Errorf("%d failed dials, want at most 8", n)
	}
	if f.Counters.HealthDown.Load() != 4 {
		t.Errorf("%d health transitions, want 4", f.Counters.HealthDown.Load())
	}
	waitCRTEmpty(t, f)
}

// TestHandlerRefusalReasons: all targets full, and only unhealthy ones.
func TestHandlerRefusalReasons(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vipa := testHandler(t, vln)
	if err := f.DPT.SetPolicy(vipa.Addr(), &tables.Policy{MaxConns: 1}); err != nil {
		t.Fatal(err)
	}
	_, live := backend(t, "A")
	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "a", Address: live, Ready: 1})
	c, done := through(t, h, vln, nil)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	<-done
	if got := greeting(t, h, vln); got != "" || f.Counters.MaxConns.Load() != 1 {
		t.Fatalf("second connection with max_conns 1: got %q, max_conns refusals %d", got, f.Counters.MaxConns.Load())
	}
	c.Close()
	waitCRTEmpty(t, f)

	setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "a", Address: deadAddr(t), Ready: 1})
	for range 3 {
		if got := greeting(t, h, vln); got != "" {
			t.Fatalf("got %q from a dead target", got)
		}
	}
	// The first two see a healthy row that does not answer; the third
	// finds only an unhealthy one.
	if f.Counters.NoAnswer.Load() != 2 || f.Counters.Unhealthy.Load() != 1 {
		t.Errorf("no_answer %d, unhealthy %d; want 2, 1", f.Counters.NoAnswer.Load(), f.Counters.Unhealthy.Load())
	}
}
