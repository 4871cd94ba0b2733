package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks run the relay in a child process (this test binary again), so
// that its CPU time and memory are its own, apart from the load generator's.

// relayImpl relays one accepted connection to the backend at addr.
type relayImpl struct {
	name  string
	relay func(client *net.TCPConn, addr string) error
}

var relayImpls = []relayImpl{
	{"relay", func(c *net.TCPConn, addr string) error { return startRelay(c, addr) }},
	{"relay-copy", func(c *net.TCPConn, addr string) error { return startRelay(hidden{c}, addr) }},
	{"io.Copy", dialed(ioCopyPair)},
	{"buffer", dialed(bufferPair)},
}

// startRelay is what the distribute handler does: Dial, then Start, which
// returns at once when the poller owns the connection.
func startRelay(c net.Conn, addr string) error {
	tg, err := Dial(c, netip.MustParseAddrPort(addr), 3*time.Second)
	if err != nil {
		c.Close()
		return err
	}
	Start(c, tg, nil, Options{}, func(error) {})
	return nil
}

// dialed dials the backend for a relay between two net.Conns and closes
// both at the end.
func dialed(relay func(c, t *net.TCPConn) error) func(*net.TCPConn, string) error {
	return func(c *net.TCPConn, addr string) error {
		defer c.Close()
		tc, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer tc.Close()
		return relay(c, tc.(*net.TCPConn))
	}
}

// Baselines for the idle footprint: sockets alone, and sockets with one
// parked goroutine per connection that dialed the target (the caller's, which
// a server has anyway).
var baselineImpls = []relayImpl{
	{"sockets", nil},
	{"goroutine", dialed(func(c, t *net.TCPConn) error { select {} })},
}

// ioCopyPair is the usual Go proxy: io.Copy both ways (splice on Linux).
func ioCopyPair(c, t *net.TCPConn) error {
	done := make(chan struct{})
	go func() {
		io.Copy(t, c)
		t.CloseWrite()
		close(done)
	}()
	io.Copy(c, t)
	c.CloseWrite()
	<-done
	return nil
}

// bufferPair copies through 32 KiB user-space buffers, one per direction.
func bufferPair(c, t *net.TCPConn) error {
	done := make(chan struct{})
	go func() {
		io.CopyBuffer(struct{ io.Writer }{t}, struct{ io.Reader }{c}, make([]byte, 32<<10))
		t.CloseWrite()
		close(done)
	}()
	io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{t}, make([]byte, 32<<10))
	c.CloseWrite()
	<-done
	return nil
}

func implByName(name string) (relayImpl, bool) {
	for _, im := range append(relayImpls, baselineImpls...) {
		if im.name == name {
			return im, true
		}
	}
	return relayImpl{}, false
}

// TestRelayChild is the child's main: it relays connections accepted on a
// fresh listener to RELAY_CHILD_BACKEND and answers commands on stdin.
func TestRelayChild(t *testing.T) {
	name := os.Getenv("RELAY_CHILD")
	if name == "" {
		t.Skip("runs only as a benchmark's child process")
	}
	impl, ok := implByName(name)
	if !ok {
		t.Fatalf("unknown relay %q", name)
	}
	if cpu, err := strconv.Atoi(os.Getenv("RELAY_CHILD_CPU")); err == nil {
		pinThreads(cpu)
	}
	raiseFDLimit(1 << 18)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listen %s\n", ln.Addr())
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, "relay child:", err)
				return
			}
			// Like a server's handler, the connection's own goroutine dials
			// the target and then relays.
			go func() {
				if impl.relay != nil {
					if err := impl.relay(c.(*net.TCPConn), os.Getenv("RELAY_CHILD_BACKEND")); err != nil {
						fmt.Fprintln(os.Stderr, "relay child:", err)
					}
					return
				}
				tc, err := net.Dial("tcp", os.Getenv("RELAY_CHILD_BACKEND"))
				if err != nil {
					fmt.Fprintln(os.Stderr, "relay child:", err)
					c.Close()
					return
				}
				mu.Lock()
				held = append(held, c, tc)
				mu.Unlock()
			}()
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "settle":
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			_, lent := pipes.counts()
			fmt.Printf("settled %d %d %d %d\n", runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse, lent)
		case "usage":
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			fmt.Printf("usage %d\n", ru.Utime.Nano()+ru.Stime.Nano())
		}
	}
	// The parent closed stdin: leave at once, connections and all.
	os.Exit(0)
}

// relayChild is a running child relay, seen from the parent.
type relayChild struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	addr  string
	pid   int
	errTB testing.TB
}

// startChild runs relay impl in a child pinned to cpu (-1: not pinned).
func startChild(tb testing.TB, impl, backend string, cpu int) *relayChild {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RELAY_CHILD="+impl, "RELAY_CHILD_BACKEND="+backend,
		"RELAY_CHILD_CPU="+strconv.Itoa(cpu), "GOGC=100")
	if cpu >= 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1") // one core, one P: no spinning for a second
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &relayChild{cmd: cmd, in: in, out: bufio.NewScanner(out), pid: cmd.Process.Pid, errTB: tb}
	tb.Cleanup(c.stop)
	c.addr = strings.TrimPrefix(c.expect("listen "), "listen ")
	return c
}

// expect returns the next output line starting with prefix.
func (c *relayChild) expect(prefix string) string {
	for c.out.Scan() {
		if l := c.out.Text(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
	c.errTB.Fatalf("relay child ended before %q", prefix)
	return ""
}

// ask sends a command and returns the numbers of its answer.
func (c *relayChild) ask(cmd string, answer string) []int64 {
	fmt.Fprintln(c.in, cmd)
	var nums []int64
	for _, f := range strings.Fields(c.expect(answer + " "))[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		nums = append(nums, n)
	}
	return nums
}

func (c *relayChild) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// cpuNanos is the child's CPU time so far.
func (c *relayChild) cpuNanos() int64 { return c.ask("usage", "usage")[0] }

// pinThreads binds every thread of this process, and so the threads they
// create later, to one CPU. Returns a function that undoes it.
func pinThreads(cpu int) (undo func()) {
	if cpu < 0 || cpu >= runtime.NumCPU() {
		return func() {}
	}
	procs := runtime.GOMAXPROCS(1)
	var set unix.CPUSet
	set.Set(cpu)
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			unix.SchedSetaffinity(tid, &set)
		}
	}
	return func() {
		unpinThreads()
		runtime.GOMAXPROCS(procs)
	}
}

// unpinThreads lets every thread run on any CPU again.
func unpinThreads() {
	var set unix.CPUSet
	for i := range runtime.NumCPU() {
		set.Set(i)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			unix.SchedSetaffinity(tid, &set)
		}
	}
}

// raiseFDLimit lifts RLIMIT_NOFILE towards n, as far as allowed.
func raiseFDLimit(n uint64) {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, lim.Max)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// procStatusKB reads a "Name: N kB" field of /proc/<pid>/status or meminfo.
func procKB(file, field string) int64 {
	b, _ := os.ReadFile(file)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// fdKinds counts a process's descriptors: all, and pipes.
func fdKinds(pid int) (all, pipes int) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		all++
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			pipes++
		}
	}
	return all, pipes
}
