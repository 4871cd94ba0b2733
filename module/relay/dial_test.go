package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
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

func TestDialJoinHalfClose(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	app, client := tcpPair(t, ln)
	defer app.Close()
	tg, backend := dialBackend(t, client, ln, 3*time.Second)
	defer backend.Close()
	var toTarget, toClient atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- JoinTarget(client, tg, []byte("pre:"), Options{ToTarget: &toTarget, ToClient: &toClient})
	}()

	app.Write([]byte("request"))
	app.CloseWrite()
	req, err := io.ReadAll(backend) // ends only if the EOF was passed on
	if err != nil || string(req) != "pre:request" {
		t.Fatalf("backend read %q, %v", req, err)
	}
	reply := bytes.Repeat([]byte("reply "), 100_000)
	go func() {
		backend.Write(reply)
		backend.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(app)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client read %d bytes (want %d), %v", len(got), len(reply), err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("JoinTarget: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("JoinTarget did not return")
	}
	if n := toTarget.Load(); n != int64(len("pre:request")) {
		t.Errorf("counted %d bytes to the target", n)
	}
	if n := toClient.Load(); n != int64(len(reply)) {
		t.Errorf("counted %d bytes to the client", n)
	}
	// JoinTarget closed both: the backend sees EOF, the client is closed.
	backend.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := backend.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("backend after the end: %d, %v; want EOF", n, err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("client write after JoinTarget: %v, want closed", err)
	}
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
