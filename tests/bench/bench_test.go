//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func streamBytes(seed uint64, n int) []byte {
	s := newSender(seed)
	var out []byte
	for len(out) < n {
		k := min(chunkLen, n-len(out))
		out = append(out, s.next()[:k]...)
		s.advance(k)
	}
	return out
}

func feed(ck *checker, b []byte) {
	for i, step := 0, 1; i < len(b); i, step = i+step, step*3+1 { // odd sizes across chunk and table boundaries
		ck.check(b[i:min(len(b), i+step)])
	}
}

func TestCheckerAcceptsStream(t *testing.T) {
	n := 3*tableLen + 12345
	ck := newChecker(77)
	feed(ck, streamBytes(77, n))
	if err := ck.verify(int64(n)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckerDetectsCorruption(t *testing.T) {
	const seed, n = 4242, tableLen + 3*chunkLen
	good := streamBytes(seed, n)
	flipped := append([]byte(nil), good...)
	flipped[tableLen+17] ^= 0x01
	swapped := append([]byte(nil), good...)
	copy(swapped[1000:1064], good[2000:2064])
	copy(swapped[2000:2064], good[1000:1064])
	for _, tc := range []struct {
		name string
		got  []byte
		sent int64
		want string
	}{
		{"one bit flipped", flipped, n, fmt.Sprintf("offset %d differs", tableLen+17)},
		{"chunks swapped", swapped, n, "offset 1000 differs"},
		{"tail lost", good[:n-1], n, fmt.Sprintf("received %d bytes, sender wrote %d", n-1, n)},
		{"bytes added", append(append([]byte(nil), good...), 0), n, "differs"},
		{"other seed", streamBytes(seed+1, n), n, "offset 0 differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ck := newChecker(seed)
			feed(ck, tc.got)
			err := ck.verify(tc.sent)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckEcho(t *testing.T) {
	m := message(modeExchange, 9)
	got := m
	if err := checkEcho(m[:], got[:]); err != nil {
		t.Fatal(err)
	}
	got[63] ^= 0x80
	if err := checkEcho(m[:], got[:]); err == nil {
		t.Fatal("altered echo accepted")
	}
	other := message(modeExchange, 10)
	if err := checkEcho(m[:], other[:]); err == nil {
		t.Fatal("echo of another message accepted")
	}
}

// corruptingProxy relays like a proxy but flips one byte of each
// connection: at offset up in the client→backend direction, down in the
// other.
func corruptingProxy(t *testing.T, backend string, up, down int64) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	relay := func(dst, src *net.TCPConn, at int64) {
		buf := make([]byte, 64<<10)
		var off int64
		for {
			n, err := src.Read(buf)
			if at >= off && at < off+int64(n) {
				buf[at-off] ^= 0x20
			}
			off += int64(n)
			if _, werr := dst.Write(buf[:n]); werr != nil || err != nil {
				dst.CloseWrite()
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp4", backend)
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() {
				defer c.Close()
				defer b.Close()
				var inner sync.WaitGroup
				inner.Go(func() { relay(b.(*net.TCPConn), c.(*net.TCPConn), up) })
				relay(c.(*net.TCPConn), b.(*net.TCPConn), down)
				inner.Wait()
			})
		}
	})
	return ln.Addr().String()
}

// TestHarnessCatchesCorruptingProxy runs the cases through a proxy that alters
// one byte per connection: every case must report a data mismatch.
func TestHarnessCatchesCorruptingProxy(t *testing.T) {
	var log strings.Builder
	cfg := config{Duration: 200 * time.Millisecond, Workers: 4, IdleConns: 10, Out: io.Discard, Err: &log}
	r := newRunner(context.Background(), cfg)
	back, err := startBackends(backendIP, 0, 1, r.fails)
	if err != nil {
		t.Fatal(err)
	}
	defer back.close()
	r.back = back
	ct := &contender{name: "corrupting", addr: corruptingProxy(t, back.lns[0].Addr().String(), 100_000, 40)}
	for _, bc := range allCases {
		if bc.name == "idle" {
			continue // one byte each way: nothing to alter at offset 40
		}
		t.Run(bc.name, func(t *testing.T) {
			before := dataFailures(r.fails)
			r.fails.setLabel(bc.name)
			if m := bc.run(r, ct); m != nil {
				t.Errorf("%s through a corrupting proxy returned a result: %v", bc.name, m)
			}
			if dataFailures(r.fails) == before {
				t.Errorf("%s: no DATA MISMATCH reported; log:\n%s", bc.name, log.String())
			}
		})
		back.waitIdle(5 * time.Second)
	}
}

func dataFailures(f *failures) int {
	n := 0
	for _, x := range f.all() {
		if x.Kind == kindData {
			n++
		}
	}
	return n
}

// TestQuickRun is the -quick smoke run against direct, gorelay, gocopy, l4relay and
// caddy-l4's proxy through a Caddy built from this checkout.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ./cmd/caddy")
	}
	var out, errs strings.Builder
	cfg := config{
		Rounds: 1, Duration: 300 * time.Millisecond, IdleConns: 300, Workers: 32, Settle: 200 * time.Millisecond,
		Cases: caseNames(), Contenders: []string{cDirect, cGoRelay, cGoCopy, cL4Relay, cProxy}, Pin: true, Out: &out, Err: &errs,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := run(ctx, cfg)
	t.Log(out.String())
	if err != nil || len(res.Failures) > 0 {
		t.Fatalf("run: %v, failures: %v\n%s", err, res.Failures, errs.String())
	}
	for _, bc := range allCases {
		for _, mt := range bc.metrics {
			for _, c := range cfg.Contenders {
				proxyOnly := strings.HasPrefix(mt.key, "idle_") && mt.key != "idle_kernel_kb" || strings.Contains(mt.key, "_cpu_") || strings.HasSuffix(mt.key, "_switches")
				if _, ok := res.Medians[mt.key][c]; !ok && (c != cDirect || !proxyOnly) {
					t.Errorf("no %s for %s", mt.key, c)
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := res.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"upload_gbps"`) {
		t.Errorf("JSON lacks upload_gbps:\n%s", b)
	}
}

func TestProxyCPU(t *testing.T) {
	m := map[string]float64{
		"connrate_cpu_proxy_pct": 50, "conn_per_s": 10000,
		"upload_cpu_proxy_pct": 60, "upload_gbps": 16,
		"download_cpu_proxy_pct": 80, // no rate: the transfer failed
	}
	proxyCPU(m)
	// Half a core for 10,000 conn/s is 50 µs each; 0.6 core for 2 GB/s is
	// 300 ms per GB.
	if m["conn_cpu_us"] != 50 || m["upload_cpu_ms_gb"] != 300 {
		t.Fatalf("conn_cpu_us %v, upload_cpu_ms_gb %v", m["conn_cpu_us"], m["upload_cpu_ms_gb"])
	}
	if v, ok := m["download_cpu_ms_gb"]; ok {
		t.Fatalf("download_cpu_ms_gb %v without a rate", v)
	}
}

// TestPinUndone: a run pins this process to the load CPU with one Go
// thread; the func pin returns must give back both, or a second run in the
// same process (go test -count 2) would find one CPU and measure unpinned.
func TestPinUndone(t *testing.T) {
	before := allowedCPUs()
	if len(before) < 2 {
		t.Skipf("%d CPUs allowed: nothing to pin", len(before))
	}
	procs := runtime.GOMAXPROCS(0)
	var errs strings.Builder
	r := newRunner(context.Background(), config{Pin: true, Err: &errs})
	unpin := r.pin()
	if got := allowedCPUs(); !slices.Equal(got, []int{r.loadCPU}) || runtime.GOMAXPROCS(0) != 1 {
		unpin()
		t.Fatalf("pinned: CPUs %v, GOMAXPROCS %d; want [%d] and 1 (%s)", got, runtime.GOMAXPROCS(0), r.loadCPU, errs.String())
	}
	unpin()
	if got := allowedCPUs(); !slices.Equal(got, before) {
		t.Errorf("after unpin: CPUs %v, want %v", got, before)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("after unpin: GOMAXPROCS %d, want %d", got, procs)
	}
}
