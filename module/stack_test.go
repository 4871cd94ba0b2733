//go:build linux && !race

// The race detector changes every frame's size: .ci/run runs this file
// without it.

package module

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
)

// A handler goroutine starts with a 2 KiB stack; caddy-l4's frames grow it
// to 4 KiB before the terminal handler runs and fill part of it. If the
// distribute handler's dial and start need more than what is left, every
// connection pays a second copy of its stack. These tests measure both
// sides with one instrument, the stack probe below, and fail when the
// handler's path no longer fits.

// stackProbe is a terminal layer4 handler that measures the stack room its
// call site has: it sits where distribute sits in a route.
type stackProbe struct{}

// probeRooms receives what the probe measured, one value per call.
var probeRooms = make(chan int, 16)

func init() { caddy.RegisterModule(stackProbe{}) }

func (stackProbe) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "layer4.handlers.stack_probe", New: func() caddy.Module { return new(stackProbe) }}
}

func (stackProbe) Handle(*layer4.Connection, layer4.Handler) error {
	probeRooms <- roomBelow()
	return nil
}

// roomBelow reports how many bytes of stack lie below its caller before
// the stack must grow, to within one frame of descend (which it grows).
//
//go:noinline
func roomBelow() int {
	var top byte
	return descend(&top, uintptr(unsafe.Pointer(&top)))
}

// descend goes a frame deeper until a call moves the stack (the runtime
// copies a stack to grow it and adjusts top, a pointer into it, but not
// at); it returns how far below top the deepest frame that fitted reached.
//
//go:noinline
func descend(top *byte, at uintptr) int {
	var pad [16]byte
	keep(pad[:])
	if uintptr(unsafe.Pointer(top)) != at {
		return -1 // the call that made this frame moved the stack
	}
	here := int(at - uintptr(unsafe.Pointer(&pad[0])))
	if d := descend(top, at); d >= 0 {
		return d
	}
	return here
}

//go:noinline
func keep([]byte) {}

// burn takes n frames of stack, then calls h as caddy-l4's route does.
//
//go:noinline
func burn(n int, h layer4.NextHandler, cx *layer4.Connection) {
	var pad [16]byte
	keep(pad[:])
	if n > 0 {
		burn(n-1, h, cx)
		return
	}
	h.Handle(cx, nil)
}

// grow takes the goroutine's stack to 4 KiB, as caddy-l4's frames do.
//
//go:noinline
func grow() {
	var pad [1536]byte
	keep(pad[:])
}

// atDepth runs h on a fresh goroutine whose stack was grown to 4 KiB, n
// burn frames down, and reports whether h's call grew the stack again.
func atDepth(n int, h layer4.NextHandler, cx *layer4.Connection) bool {
	moved := make(chan bool)
	go func() {
		grow()
		var top byte
		at := uintptr(unsafe.Pointer(&top))
		burn(n, h, cx)
		moved <- uintptr(unsafe.Pointer(&top)) != at
	}()
	return <-moved
}

// roomAt is the room the probe measures when called n burn frames down
// (the probe grows the stack itself); -1 when there is none.
func roomAt(n int) int {
	atDepth(n, stackProbe{}, nil)
	return <-probeRooms
}

// caddyL4Room is the room the probe measures as the terminal handler of a
// real layer4 server (Caddy's default logging, debug off).
func caddyL4Room(t *testing.T) int {
	t.Helper()
	port := freeLoopbackPort(t)
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR", "writer": map[string]any{"output": "discard"}}}},
		"apps": map[string]any{"layer4": map[string]any{"servers": map[string]any{"probe": map[string]any{
			"listen": []string{fmt.Sprintf("tcp/127.0.0.1:%d", port)},
			"routes": []any{map[string]any{"handle": []any{map[string]any{"handler": "stack_probe"}}}},
		}}}},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(raw, true); err != nil {
		t.Fatal(err)
	}
	defer caddy.Stop()
	room := -1
	for range 3 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-probeRooms:
			if room < 0 || r < room {
				room = r
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the layer4 server never called the probe")
		}
		c.Close()
	}
	return room
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// trials is how many connections run at each depth. The path varies (a
// poller's loop running or started, a handshake over at once or awaited)
// and a few connections take the allocator's slow path, which is deeper
// than any of this plugin's frames (an mcache refill, as in production):
// a depth counts as fitting when at most a quarter of them grew the stack.
const trials = 8

// stackMargin is the room the handler's path must leave unused: the path
// varies by a frame or two between machines and runs (a loaded machine, a
// poller's goroutine to start, an allocator's slower path), and such a
// variation must not make every connection copy its stack.
const stackMargin = 128

// TestHandlerFitsCaddyL4Stack runs the distribute handler's whole path
// (DPT lookup, raw dial of a live target, CRT insert, the relay's start)
// at every depth of a fresh 4 KiB stack and finds the least room it needs
// without growing the stack; that must not exceed the room caddy-l4
// leaves its terminal handler less a margin.
func TestHandlerFitsCaddyL4Stack(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a GC may shrink a stack: no move but ours
	l4 := caddyL4Room(t)
	if l4 <= 0 {
		t.Fatalf("caddy-l4 leaves %d bytes", l4)
	}
	vln := listenVIPA(t)
	_, live := backend(t, "B")
	for _, tc := range []struct {
		name string
		set  func(*Handler)
		pre  []byte
	}{
		{"plain", func(*Handler) {}, nil},
		{"idle timeout, prefetched bytes", func(h *Handler) { h.IdleTimeout = caddy.Duration(time.Minute) }, []byte("pre")},
		{"proxy protocol v2", func(h *Handler) { h.proxyVersion = 2 }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, f, vipa := testHandler(t, vln)
			tc.set(h)
			setRow(f, tables.Row{VIPA: vipa.Addr(), Port: vipa.Port(), Node: "b", Address: live, Ready: 1})
			handle := func(n int) bool {
				cx, app := accepted(t, vln, tc.pre)
				defer app.Close()
				moved := atDepth(n, h, cx)
				app.SetReadDeadline(time.Now().Add(3 * time.Second))
				if b := make([]byte, 1); !readFull(app, b) || b[0] != 'B' {
					t.Fatalf("depth %d: no greeting through the relay", n)
				}
				return moved
			}
			for range 2 * runtime.GOMAXPROCS(0) {
				handle(0) // a poller's first connection opens its epoll set: a cold path
			}
			need := -1
			for n := 0; ; n++ {
				room := roomAt(n)
				if room < 0 {
					break
				}
				moved := 0
				for range trials {
					if handle(n) {
						moved++
					}
				}
				if moved > trials/4 {
					break
				}
				need = room
			}
			waitCRTEmpty(t, f)
			t.Logf("needs %d bytes of stack room; caddy-l4 leaves %d", need, l4)
			if need < 0 {
				t.Fatal("the handler grew the stack even with the most room a 4 KiB stack has")
			}
			if need > l4 {
				t.Fatalf("the handler needs %d bytes of stack room, caddy-l4 leaves %d: every connection copies its stack again", need, l4)
			}
			if need > l4-stackMargin {
				t.Fatalf("the handler needs %d bytes of stack room, caddy-l4 leaves %d: less than %d to spare", need, l4, stackMargin)
			}
		})
	}
}

// TestStackProbeSeesGrowth: the instrument itself. Where the probe
// measures ~700 bytes of room, a handler with a 1 KiB frame must be found
// to grow the stack and one with a small frame must not.
func TestStackProbeSeesGrowth(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	n := 0
	for roomAt(n) > 768 {
		n++
	}
	room := roomAt(n)
	if !atDepth(n, bigFrame{}, nil) {
		t.Fatalf("a 1 KiB frame fitted in %d bytes of room", room)
	}
	if atDepth(n, smallFrame{}, nil) {
		t.Fatalf("a small frame grew the stack with %d bytes of room", room)
	}
}

type bigFrame struct{}

func (bigFrame) Handle(*layer4.Connection, layer4.Handler) error {
	var pad [1024]byte
	keep(pad[:])
	return nil
}

type smallFrame struct{}

func (smallFrame) Handle(*layer4.Connection, layer4.Handler) error {
	var pad [32]byte
	keep(pad[:])
	return nil
}

// accepted returns a connection accepted on ln, wrapped as caddy-l4 hands
// it to a handler with the bytes its matchers read, and the client's end.
func accepted(t *testing.T, ln net.Listener, pre []byte) (*layer4.Connection, net.Conn) {
	t.Helper()
	app, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	buf := append(make([]byte, 0, 1024), pre...)
	return layer4.WrapConnection(c, buf, zap.NewNop()), app
}

func readFull(c net.Conn, b []byte) bool {
	_, err := io.ReadFull(c, b)
	return err == nil
}
