package module

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
)

func TestParseQuiesce(t *testing.T) {
	for body, want := range map[string]fleet.Selector{
		"":   {},
		" ":  {},
		"{}": {},
		`{"vipa": "127.0.0.100", "port": 8080, "node": "caddy-b"}`: {VIPA: netip.MustParseAddr("127.0.0.100"), Port: 8080, Node: "caddy-b"},
		`{"vipa": "::ffff:127.0.0.100"}`:                           {VIPA: netip.MustParseAddr("127.0.0.100")},
		`{"port": 1}`:                                              {Port: 1},
	} {
		got, err := parseQuiesce(strings.NewReader(body))
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", body, got, err, want)
		}
	}
	for body, msg := range map[string]string{
		`{"port": 0}`:           "port 0: want 1-65535",
		`{"port": 65536}`:       "port 65536",
		`{"port": "80"}`:        "want {",
		`{"vipa": "nowhere"}`:   "invalid VIPA",
		`{"vipa": "224.0.0.1"}`: "invalid VIPA",
		`{"node": "a b"}`:       "node:",
		`{"nodes": "caddy-b"}`:  `unknown field "nodes"`,
		`[]`:                    "want {",
		`{} {}`:                 "more than one",
		`{"vipa":`:              "body:",
		"{\"node\": \"" + strings.Repeat("x", maxQuiesceBody) + "\"}": "larger than",
	} {
		_, err := parseQuiesce(strings.NewReader(body))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%.40q: %v, want %q", body, err, msg)
		}
	}
}

func TestParseMove(t *testing.T) {
	v, to, idle, err := parseMove(strings.NewReader(`{"vipa": "::ffff:10.0.0.100", "to": "caddy-b", "when": "idle"}`))
	if err != nil || v != netip.MustParseAddr("10.0.0.100") || to != "caddy-b" || !idle {
		t.Fatalf("%v %q %v %v", v, to, idle, err)
	}
	if _, _, idle, err := parseMove(strings.NewReader(`{"vipa": "10.0.0.100", "to": "caddy-b"}`)); err != nil || idle {
		t.Fatalf("when now by default: %v %v", idle, err)
	}
	for body, msg := range map[string]string{
		"":                                    "empty body; want {",
		`{}`:                                  "missing vipa; want {",
		`{"vipa": "10.0.0.100"}`:              "missing to; want {",
		`{"vipa": "10.0.0.999", "to": "b"}`:   "vipa: invalid VIPA",
		`{"vipa": "10.0.0.100", "to": "a b"}`: "to:",
		`{"vipa": "10.0.0.100", "to": "b", "when": "later"}`:        `when "later": want now or idle`,
		`{"vipa": "10.0.0.100", "to": "b", "x": 1}`:                 `unknown field "x"`,
		`{"vipa": "10.0.0.100", "to": "b"} x`:                       "more than one",
		`nope`:                                                      "body: invalid character",
		"{\"to\": \"" + strings.Repeat("x", maxQuiesceBody) + "\"}": "larger than",
	} {
		if _, _, _, err := parseMove(strings.NewReader(body)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%.40q: %v, want %q", body, err, msg)
		}
	}
}
