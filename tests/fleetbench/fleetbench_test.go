//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the command's quick mode end to end on a real fleet: it
// proves the measurement works, not that this machine meets the goals.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process fleet")
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", vipa} {
		ln, err := net.Listen("tcp4", ip+":0")
		if err != nil {
			t.Skipf("loopback address %s unusable here: %v", ip, err)
		}
		ln.Close()
	}
	var log bytes.Buffer
	cfg := config{Trials: 10, Kills: 1, Stops: 1, Profiles: []string{"lan"}, Poll: 2 * time.Millisecond, Timeout: 5 * time.Second, Log: &log}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	code := report(ctx, cfg, &out)
	t.Logf("progress:\n%s\ntable:\n%s", log.String(), out.String())
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"| lan | listen → routable | 10 |", "| lan | stop-listening → unroutable | 10 |", "| lan | SIGKILL → rows gone | 1 |", "| lan | SIGTERM → rows gone | 1 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}
