package vipa

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeySource(t *testing.T) {
	if err := KeySource("/k", "a2V5"); err == nil || err.Error() != "gossip: keyring_file and encrypt_key are exclusive" {
		t.Errorf("both: %v", err)
	}
	for _, one := range [][2]string{{"/k", ""}, {"", "a2V5"}, {"", ""}} {
		if err := KeySource(one[0], one[1]); err != nil {
			t.Errorf("KeySource(%q, %q) = %v", one[0], one[1], err)
		}
	}
}

const key32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes

func TestDecodeKey(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{key32, ""},
		{"MDEyMzQ1Njc4OWFiY2RlZg==", ""},                  // 16
		{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", ""},          // 24
		{"MDEyMzQ1Njc4OWFiY2RlZjA=", "17 bytes, want 16"}, // 17
		{"not base64!", "gossip key is not base64"},
		{"", "0 bytes"},
	} {
		_, err := DecodeKey(tc.in)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("DecodeKey(%q) = %v; want %q", tc.in, err, tc.err)
		}
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
	for _, tc := range []struct {
		path, err string
		keys      int
	}{
		{write("good", `["`+key32+`", "MDEyMzQ1Njc4OWFiY2RlZg=="]`), "", 2},
		{filepath.Join(dir, "missing"), "keyring_file " + filepath.Join(dir, "missing") + ": no such file or directory", 0},
		{write("notjson", "not json"), "want a JSON array of base64 keys", 0},
		{write("empty", "[]"), "holds no key", 0},
		{write("badkey", `["`+key32+`", "eA=="]`), "key 1: gossip key: 1 bytes", 0},
	} {
		keys, err := LoadKeyring(tc.path)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) || len(keys) != tc.keys {
			t.Errorf("LoadKeyring(%s) = %d keys, %v; want %d, %q", filepath.Base(tc.path), len(keys), err, tc.keys, tc.err)
		}
	}
}

func TestValidateGossip(t *testing.T) {
	for _, tc := range []struct {
		bind            string
		keyed, insecure bool
		ok              bool
	}{
		{"127.0.0.1:7946", false, false, true},
		{"[::1]:7946", false, false, true},
		{"0.0.0.0:7946", false, false, false},
		{"0.0.0.0:7946", true, false, true},
		{"0.0.0.0:7946", false, true, true},
		{"10.0.0.11:7946", false, false, false},
	} {
		err := ValidateGossip(netip.MustParseAddrPort(tc.bind), tc.keyed, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateGossip(%s, keyed %v, insecure %v) = %v", tc.bind, tc.keyed, tc.insecure, err)
		}
	}
}

func TestAdvertiseFor(t *testing.T) {
	for _, tc := range []struct {
		bind, adv, want, err string
	}{
		{"127.0.0.2:7946", "", "127.0.0.2", ""},
		{"0.0.0.0:7946", "10.0.0.11", "10.0.0.11", ""},
		{"[::]:7946", "2001:db8::1", "2001:db8::1", ""},
		{"0.0.0.0:7946", "", "", "advertise address is required when gossip binds the wildcard address"},
		{"127.0.0.1:7946", "0.0.0.0", "", `invalid advertise address "0.0.0.0"`},
		{"127.0.0.1:7946", "::", "", `invalid advertise address "::"`},
	} {
		got, err := AdvertiseFor(netip.MustParseAddrPort(tc.bind), tc.adv)
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) || tc.err == "" && (err != nil || got.String() != tc.want) {
			t.Errorf("AdvertiseFor(%s, %q) = %v, %v; want %s %q", tc.bind, tc.adv, got, err, tc.want, tc.err)
		}
	}
}

// TestResolveBind: a literal binds as written; a name binds its one
// resolved address (localhost is 127.0.0.1 here); a malformed one is refused.
func TestResolveBind(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2:7946": "127.0.0.2:7946",
		"[::1]:7946":     "[::1]:7946",
		"localhost:7946": "127.0.0.1:7946",
	} {
		got, err := ResolveBind(context.Background(), in)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"localhost", "localhost:0", "caddy a:7946"} {
		if got, err := ResolveBind(context.Background(), in); err == nil {
			t.Errorf("%s: %v, want an error", in, got)
		}
	}
}
