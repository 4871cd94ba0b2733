package module

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
)

// scriptedListener returns its accepts in order, then net.ErrClosed.
type scriptedListener struct {
	script []error // nil: a connection
	conns  []net.Conn
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	if len(l.script) == 0 {
		return nil, net.ErrClosed
	}
	err := l.script[0]
	l.script = l.script[1:]
	if err != nil {
		return nil, err
	}
	c, other := net.Pipe()
	l.conns = append(l.conns, other)
	return c, nil
}

func (l *scriptedListener) Close() error   { return nil }
func (l *scriptedListener) Addr() net.Addr { return &net.TCPAddr{} }

// acceptErr is a failed accept as the net package returns it.
func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func newTestLoop(script ...error) (*acceptLoop, *scriptedListener, *observer.ObservedLogs, *[]time.Duration) {
	core, logs := observer.New(zapcore.InfoLevel)
	ln := &scriptedListener{script: script}
	waits := new([]time.Duration)
	l := &acceptLoop{
		addr:     netip.MustParseAddrPort("127.0.0.100:8080"),
		ln:       ln,
		handle:   func(c net.Conn) { c.Close() },
		counters: new(fleet.Counters),
		logger:   zap.New(core),
		wait: func(_ context.Context, d time.Duration) bool {
			*waits = append(*waits, d)
			return true
		},
	}
	return l, ln, logs, waits
}

// TestAcceptLoopRetries: failed accepts never end the loop; it pauses
// from 5 ms doubling, waits for the next client instead when a refusal
// emptied the queue, and pauses from 5 ms again after an accept. One line
// for the episode.
func TestAcceptLoopRetries(t *testing.T) {
	l, ln, logs, waits := newTestLoop(
		acceptErr(syscall.EMFILE),
		acceptErr(syscall.EMFILE),
		acceptErr(syscall.ENOBUFS),
		acceptErr(syscall.ENFILE),
		nil,
		acceptErr(syscall.EMFILE),
	)
	refusals := [][2]int{{1, 0}, {2, 1}, {0, 0}, {0, 0}}
	l.refuse = func() (int, bool) {
		r := refusals[0]
		refusals = refusals[1:]
		return r[0], r[1] == 1
	}
	awaited := 0
	l.awaitClient = func() error { awaited++; return nil }
	l.serve(context.Background())
	if awaited != 1 {
		t.Errorf("waited for a client %d times after emptying the queue, want 1", awaited)
	}
	for _, c := range ln.conns {
		c.Close()
	}

	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 5 * time.Millisecond}
	if !slices.Equal(*waits, want) {
		t.Errorf("pauses %v, want %v", *waits, want)
	}
	if len(ln.conns) != 1 {
		t.Errorf("%d connections handled, want 1", len(ln.conns))
	}
	n := l.counters
	if n.NoDescriptors.Load() != 3 || n.AcceptNoDescriptors.Load() != 4 || n.AcceptOther.Load() != 1 {
		t.Errorf("refused %d, accept errors %d (descriptors), %d (other)",
			n.NoDescriptors.Load(), n.AcceptNoDescriptors.Load(), n.AcceptOther.Load())
	}
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "out of descriptors") || !strings.Contains(errs[0].Message, "LimitNOFILE") {
		t.Errorf("logged %v; want one line for the episode, with the fix", errs)
	}
}

// TestAcceptBackoff doubles from 5 ms to 1 s.
func TestAcceptBackoff(t *testing.T) {
	var l acceptLoop
	var got []time.Duration
	for range 10 {
		got = append(got, l.nextBackoff())
	}
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
}

// TestAcceptEpisode: an episode is logged when it starts, and its end
// (with what it refused) at the first accept after a quiet while.
func TestAcceptEpisode(t *testing.T) {
	l, _, logs, _ := newTestLoop()
	err := acceptErr(syscall.EMFILE)
	l.failed("descriptors", err)
	l.ep.refused = 7
	l.failed("descriptors", err)
	l.accepted()
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d lines within an episode, want 1", n)
	}
	l.ep.last = time.Now().Add(-episodeQuiet)
	l.accepted()
	end := logs.FilterMessage("VIPA listener accepts again").All()
	if len(end) != 1 || end[0].ContextMap()["refused"] != uint64(7) || end[0].ContextMap()["failed_accepts"] != uint64(2) {
		t.Fatalf("end of episode: %v", end)
	}
	l.failed("other", acceptErr(syscall.ENOBUFS))
	if errs := logs.FilterLevelExact(zapcore.ErrorLevel).All(); len(errs) != 2 || strings.Contains(errs[1].Message, "LimitNOFILE") {
		t.Fatalf("second episode: %v", errs)
	}
}

// TestAcceptLoopEnds on a closed listener and on a socket that can no
// longer accept, which is logged.
func TestAcceptLoopEnds(t *testing.T) {
	l, _, logs, waits := newTestLoop(acceptErr(syscall.EINVAL))
	l.serve(context.Background())
	if logs.FilterMessageSnippet("no longer accepts").Len() != 1 || len(*waits) != 0 {
		t.Fatalf("logged %v, paused %v", logs.All(), *waits)
	}
	for err, want := range map[error]string{
		acceptErr(syscall.EMFILE):    "descriptors",
		acceptErr(syscall.ENFILE):    "descriptors",
		acceptErr(syscall.ENOBUFS):   "other",
		acceptErr(syscall.ENOMEM):    "other",
		acceptErr(syscall.EBADF):     "",
		errors.New("something else"): "other",
	} {
		if got := acceptErrorKind(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}
