package relay

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestDialRefused(t *testing.T) {
	ln := listen(t)
	client, peer := tcpPair(t, ln)
	defer client.Close()
	defer peer.Close()
	dead := listen(t)
	addr := dead.Addr().(*net.TCPAddr).AddrPort()
	dead.Close() // nothing listens there any more
	start := time.Now()
	tg, err := Dial(peer, addr, 3*time.Second)
	if err == nil {
		tg.Close()
		t.Fatal("dial of a closed port succeeded")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial error %v, want connection refused", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refused dial took %v", d)
	}
	// The next address works.
	tg, err = Dial(peer, ln.Addr().(*net.TCPAddr).AddrPort(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
}

// dialBackend dials ln's address for client and returns the target and the
// backend's end of it.
func dialBackend(t *testing.T, client net.Conn, ln net.Listener, timeout time.Duration) (*Target, net.Conn) {
	t.Helper()
	backends := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		backends <- c
	}()
	tg, err := Dial(client, ln.Addr().(*net.TCPAddr).AddrPort(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	backend := <-backends
	if backend == nil {
		t.Fatal("accept failed")
	}
	return tg, backend
}
