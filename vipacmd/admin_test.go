package vipacmd

import (
	"net"
	"strings"
	"testing"
)

// A closed admin endpoint is one line naming the address and the cause.
func TestAdminUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = adminRequest(addr, "GET", "/vipa/dpt", nil)
	if err == nil {
		t.Fatal("request to a closed port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "admin endpoint "+addr+" unreachable") || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "\n") {
		t.Fatalf("error %q", msg)
	}
	if _, err := adminRequest("tcp/127.0.0.1:1-9", "GET", "/", nil); err == nil || !strings.Contains(err.Error(), "invalid admin address") {
		t.Fatalf("a port range: %v", err)
	}
}
