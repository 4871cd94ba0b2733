package serfsync

import (
	"net/netip"
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
	for _, name := range []string{"", "caddy a", strings.Repeat("n", 200)} {
		if err := (&Config{NodeName: name, BindAddr: netip.MustParseAddrPort("127.0.0.1:1")}).Validate(); err == nil {
			t.Fatalf("node name %q validated", name)
		}
	}
	if err := (&Config{NodeName: "a", BindAddr: netip.MustParseAddrPort("127.0.0.1:1"), Label: strings.Repeat("l", 300)}).Validate(); err == nil {
		t.Fatal("a label of 300 bytes validated")
	}
	if err := (&Config{NodeName: "a", BindAddr: netip.MustParseAddrPort("127.0.0.1:1"), Profile: "turbo"}).Validate(); err == nil {
		t.Fatal("an unknown profile validated")
	}
}
