package listenwatch

import (
	"maps"
	"net"
	"testing"
)

const (
	benchListeners   = 200
	benchConnections = 2000
)

// openBenchSockets opens listeners and established loopback connections, so
// the table holds far more connections than listeners, as on a busy host.
func openBenchSockets(b *testing.B) {
	b.Helper()
	lns := make([]net.Listener, benchListeners)
	for i := range lns {
		lns[i] = listen(b, "127.0.0.1:0", false)
	}
	for i := range benchConnections {
		ln := lns[i%len(lns)]
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
	}
}

// BenchmarkScan compares netlink (only LISTEN sockets cross to user space)
// with /proc (every socket is formatted as text and parsed). "scan" is one
// Watcher tick: netlink scan and comparison with the previous snapshot;
// "Scan" is the one-shot function that opens its own socket.
func BenchmarkScan(b *testing.B) {
	openBenchSockets(b)
	for _, m := range []struct {
		name string
		scan func(*scanner, Snapshot) error
	}{
		{"netlink", func(sc *scanner, s Snapshot) error { clear(s); return sc.scanNetlink(s) }},
		{"proc", func(sc *scanner, s Snapshot) error { clear(s); return sc.scanProc(s) }},
	} {
		b.Run(m.name, func(b *testing.B) {
			sc, err := newScanner()
			if err != nil {
				b.Fatal(err)
			}
			defer sc.close()
			s := make(Snapshot)
			b.ReportAllocs()
			for b.Loop() {
				if err := m.scan(sc, s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(s)), "addrs")
		})
	}
	b.Run("scan", func(b *testing.B) {
		sc, err := newScanner()
		if err != nil {
			b.Fatal(err)
		}
		defer sc.close()
		prev, next := make(Snapshot), make(Snapshot)
		if err := sc.scan(prev); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := sc.scan(next); err != nil {
				b.Fatal(err)
			}
			if !maps.Equal(prev, next) {
				prev, next = next, prev
			}
		}
	})
}
