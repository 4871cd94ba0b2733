package serfsync

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestJoinByName: a node joins a member by its host name, resolved when
// the join is tried (localhost is 127.0.0.1 here).
func TestJoinByName(t *testing.T) {
	var o fleetOpts
	first := startNode(t, o.config("n00", netip.MustParseAddr("127.0.0.1"), 0, nil))
	join := []string{fmt.Sprintf("localhost:%d", first.BindAddr().Port())}
	second := startNode(t, o.config("n01", testIP(1), 0, join))
	t.Cleanup(func() { stopAll([]*tnode{first, second}) })
	waitFor(t, 10*time.Second, "both members alive", func() bool {
		return alive(first) == 2 && alive(second) == 2
	})
}

// TestValidateJoin: join addresses are host:port with an IP literal or a
// DNS name; anything else is refused before the agent starts.
func TestValidateJoin(t *testing.T) {
	for join, want := range map[string]string{
		"caddy-b.internal:7946": "",
		"127.0.0.2:7946":        "",
		"[::1]:7946":            "",
		"localhost:7946":        "",
		"nowhere":               "want host:port",
		"caddy-b:0":             "want 1-65535",
		"caddy-b:http":          "want 1-65535",
		"-caddy-b:7946":         "neither an IP address nor a DNS name",
		"caddy b:7946":          "neither an IP address nor a DNS name",
	} {
		cfg := fleetOpts{}.config("n00", testIP(0), 7946, []string{join})
		err := cfg.Validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("join %q: %v, want %q", join, err, want)
		}
	}
}

// TestJoinWhenConfigured: a node started with JoinWhenConfigured joins
// only once Configured is called and serf carries the tags set before it,
// so the members it joins see what it can own from their first sight of
// it: seen earlier, it would look like a node that owns nothing.
func TestJoinWhenConfigured(t *testing.T) {
	var o fleetOpts
	first := startNode(t, o.config("n00", testIP(0), 0, nil))
	cfg := o.config("n01", testIP(1), 0, []string{first.BindAddr().String()})
	cfg.JoinWhenConfigured = true
	second := startNode(t, cfg)
	t.Cleanup(func() { stopAll([]*tnode{first, second}) })

	time.Sleep(300 * time.Millisecond) // a join on loopback takes milliseconds
	if alive(first) != 1 || second.JoinTried() {
		t.Fatalf("n01 joined before its config: n00 sees %d alive, join tried %v", alive(first), second.JoinTried())
	}
	second.SetVIPADyn(VIPADyn{Ranks: map[netip.Addr]int{vipaA: 100}})
	second.Configured()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range first.Members() {
			if m.Name != "n01" {
				continue
			}
			if r, ok := m.VIPADyn.Ranks[vipaA]; !ok || r != 100 || !m.Configured {
				t.Fatalf("n00's first sight of n01: %+v, want rank 100 for %s, configured", m, vipaA)
			}
			// n00 was never configured: n01 sees it so.
			for _, m := range second.Members() {
				if m.Name == "n00" && m.Configured {
					t.Fatalf("n01 sees n00 configured: %+v", m)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("n01 did not join after its config")
		}
		time.Sleep(time.Millisecond)
	}
}
