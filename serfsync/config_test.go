package serfsync

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateRefusesClearTextOffLoopback(t *testing.T) {
	key := make([]byte, 32)
	for _, tc := range []struct {
		name     string
		bind     string
		keys     [][]byte
		insecure bool
		wantErr  string
	}{
		{"loopback without key", "127.0.0.1:7946", nil, false, ""},
		{"LAN without key", "192.0.2.10:7946", nil, false, "is not loopback"},
		{"LAN without key, insecure", "192.0.2.10:7946", nil, true, ""},
		{"LAN with key", "192.0.2.10:7946", [][]byte{key}, false, ""},
		{"bad key size", "127.0.0.1:7946", [][]byte{key[:7]}, false, "gossip key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{NodeName: "a", BindAddr: netip.MustParseAddrPort(tc.bind), Keys: tc.keys, Insecure: tc.insecure}
			err := c.Validate()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
	if err := (&Config{BindAddr: netip.MustParseAddrPort("127.0.0.1:1")}).Validate(); err == nil {
		t.Fatal("a config without node name validated")
	}
	if err := (&Config{NodeName: "a", BindAddr: netip.MustParseAddrPort("127.0.0.1:1"), Profile: "turbo"}).Validate(); err == nil {
		t.Fatal("an unknown profile validated")
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", `["3k7VBm6mYxT6kzF8xj0s0m9cRSuqkC3QfWzE4u8i5Bw=", "AAAAAAAAAAAAAAAAAAAAAA=="]`)
	keys, err := LoadKeyring(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("keys: %d, sizes %d/%d", len(keys), len(keys[0]), len(keys[1]))
	}
	for name, body := range map[string]string{
		"not json":   `3k7VBm6mYxT6kzF8xj0s0m9cRSuqkC3QfWzE4u8i5Bw=`,
		"empty":      `[]`,
		"bad base64": `["***"]`,
		"bad size":   `["c2hvcnQ="]`,
	} {
		if _, err := LoadKeyring(write(strings.ReplaceAll(name, " ", "_"), body)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := LoadKeyring(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing keyring loaded")
	}
}

func TestPortSet(t *testing.T) {
	var rs []PortRange
	for _, s := range []string{"9005-9009", "80", "9000-9004", "443", "81"} {
		r, err := ParsePortRange(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	set := NewPortSet(rs)
	if got := len(set); got != 3 { // 80-81, 443, 9000-9009
		t.Fatalf("merged into %d ranges: %v", got, set)
	}
	for port, want := range map[uint16]bool{79: false, 80: true, 81: true, 82: false, 443: true, 8999: false, 9000: true, 9009: true, 9010: false} {
		if set.Contains(port) != want {
			t.Errorf("Contains(%d) = %v", port, !want)
		}
	}
	if n := len(set.Ports()); n != 13 {
		t.Errorf("Ports lists %d", n)
	}
	for _, bad := range []string{"0", "65536", "-1", "10-5", "a", "1-", ""} {
		if _, err := ParsePortRange(bad); err == nil {
			t.Errorf("ParsePortRange(%q) accepted", bad)
		}
	}
}

func TestCandidate(t *testing.T) {
	adv := netip.MustParseAddr("127.0.0.2")
	for _, tc := range []struct {
		dest []string
		node string
		want bool
	}{
		{[]string{DestAll}, "caddy-b", true},
		{[]string{"caddy-b"}, "caddy-b", true},
		{[]string{"caddy-c"}, "caddy-b", false},
		{[]string{"127.0.0.2"}, "caddy-b", true},
		{[]string{"127.0.0.3"}, "caddy-b", false},
		{[]string{"caddy-c"}, "caddy-a", true}, // the routing node
	} {
		d := Definition{DestIP: tc.dest, RoutingNode: "caddy-a"}
		if got := d.Candidate(tc.node, adv); got != tc.want {
			t.Errorf("destip %v, node %s: %v", tc.dest, tc.node, got)
		}
	}
}
