//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	maybeServeApp()
	os.Exit(m.Run())
}

// quickRun are the scenarios TestQuick runs, with quickSizes.
var quickRun = regexp.MustCompile(`^(held|target-kill|blackhole|reloads|silent|short|gossip-junk|hostile-reports|hostile-definition)$`)

// TestQuick runs the fast scenarios with smaller counts against the real
// binary: every verdict must be a pass.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy processes")
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", vipa} {
		ln, err := net.Listen("tcp4", ip+":0")
		if err != nil {
			t.Skipf("loopback address %s unusable here: %v", ip, err)
		}
		ln.Close()
	}
	if err := raiseNoFile(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cfg := config{Long: true, Run: quickRun, Sizes: quickSizes, Log: &log}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results, err := runSuite(ctx, cfg)
	var out bytes.Buffer
	failed := table(&out, results)
	t.Logf("progress:\n%s\n%s", log.String(), out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(selected(cfg)) || len(results) == 0 {
		t.Fatalf("%d results for %d scenarios", len(results), len(selected(cfg)))
	}
	if failed > 0 {
		t.Fatalf("%d scenarios failed", failed)
	}
	if !strings.Contains(out.String(), "| held | pass |") {
		t.Error("table lacks the held scenario's pass")
	}
}
