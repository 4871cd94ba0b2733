//go:build linux

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// validate runs `caddy validate` (provision without start) on a Caddyfile.
func validate(t *testing.T, caddyfile string) (string, error) {
	t.Helper()
	return caddyValidate(t, "Caddyfile", caddyfile, "--adapter", "caddyfile")
}

// validateJSON runs `caddy validate` on a JSON config.
func validateJSON(t *testing.T, config string) (string, error) {
	t.Helper()
	return caddyValidate(t, "caddy.json", config)
}

func caddyValidate(t *testing.T, name, config string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, append([]string{"validate", "--config", path}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestGossipSecurityRule: a non-loopback gossip address needs a key or an
// explicit insecure; a keyring file is loaded by the app itself.
func TestGossipSecurityRule(t *testing.T) {
	keyring := filepath.Join(t.TempDir(), "vipa.keyring")
	if err := os.WriteFile(keyring, []byte(`["`+fleetKey+`"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, gossip, want string
	}{
		{"clear text off loopback", "gossip 192.0.2.10:7946", "is not loopback"},
		{"insecure written", "gossip 192.0.2.10:7946 {\n\t\t\tinsecure\n\t\t}", ""},
		{"key given", "gossip 192.0.2.10:7946 {\n\t\t\tencrypt_key " + fleetKey + "\n\t\t}", ""},
		{"keyring file", "gossip 192.0.2.10:7946 {\n\t\t\tkeyring_file " + keyring + "\n\t\t}", ""},
		{"missing keyring file", "gossip 192.0.2.10:7946 {\n\t\t\tkeyring_file " + keyring + ".missing\n\t\t}", "keyring_file " + keyring + ".missing: no such file or directory"},
		{"loopback", "gossip 127.0.0.1:7946", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := validate(t, "{\n\tvipadynamic {\n\t\tnode a\n\t\t"+tc.gossip+"\n\t}\n}\n")
			if tc.want == "" && err != nil {
				t.Fatalf("refused:\n%s", out)
			}
			if tc.want != "" && (err == nil || !strings.Contains(out, tc.want)) {
				t.Fatalf("want a refusal saying %q, got %v:\n%s", tc.want, err, out)
			}
		})
	}
}

// TestDistributeNeedsApp: the handler without the vipadynamic app is a
// configuration error, not an empty app.
func TestDistributeNeedsApp(t *testing.T) {
	out, err := validate(t, `{
	layer4 {
		127.0.0.100:9999 {
			route {
				distribute
			}
		}
	}
}
`)
	if err == nil || !strings.Contains(out, "distribute: no vipadynamic app in this config") {
		t.Fatalf("want a refusal, got %v:\n%s", err, out)
	}
}

// TestDistributeProxyProtocolJSON: a JSON config with an unknown PROXY
// protocol version is refused when the handler is provisioned.
func TestDistributeProxyProtocolJSON(t *testing.T) {
	config := `{"apps": {
	"vipadynamic": {"distribute": [{"vipa": "127.0.0.100", "ports": ["9999"], "destip": ["all"]}]},
	"layer4": {"servers": {"s": {"listen": ["127.0.0.100:9999"], "routes": [
		{"handle": [{"handler": "distribute", "proxy_protocol": "%s"}]}]}}}}}`
	for version, want := range map[string]string{"v3": `proxy_protocol \"v3\": want v1 or v2`, "v1": ""} {
		out, err := validateJSON(t, fmt.Sprintf(config, version))
		switch {
		case want == "" && err != nil:
			t.Errorf("proxy_protocol %s refused: %v\n%s", version, err, out)
		case want != "" && (err == nil || !strings.Contains(out, want)):
			t.Errorf("proxy_protocol %s: want a refusal saying %q, got %v:\n%s", version, want, err, out)
		}
	}
}

// TestJSONSaysWhatTheCaddyfileSays: a JSON config is held to the rules the
// Caddyfile adapter applies (those of the fleet's wire included) when the
// app is provisioned, and the error reads the same.
func TestJSONSaysWhatTheCaddyfileSays(t *testing.T) {
	long := strings.Repeat("d", 300)
	for _, tc := range []struct {
		name, app, want string
	}{
		{"destip of 300", `"distribute": [{"vipa": "127.0.0.100", "ports": ["80"], "destip": ["` + long + `"]}]`,
			"vipadistribute 127.0.0.100: destip: node name is 300 characters: at most 128"},
		{"port 0", `"distribute": [{"vipa": "127.0.0.100", "ports": ["0"], "destip": ["all"]}]`,
			`vipadistribute 127.0.0.100: invalid port \"0\": want 1-65535`},
		{"port all with a port list", `"distribute": [{"vipa": "127.0.0.100", "ports": ["all", "80"], "destip": ["all"]}]`,
			"vipadistribute 127.0.0.100: port all cannot be mixed with a port list"},
		{"exclude without port all", `"distribute": [{"vipa": "127.0.0.100", "ports": ["80"], "exclude": ["22"], "destip": ["all"]}]`,
			"vipadistribute 127.0.0.100: exclude needs port all"},
		{"node with a space", `"node": "caddy a"`, `node name \"caddy a\": want letters, digits`},
		{"label of 300", `"node": "a", "gossip": {"label": "` + strings.Repeat("l", 300) + `"}`, "label is 300 bytes: at most 255"},
		{"advertise wildcard", `"node": "a", "advertise": "0.0.0.0"`, `invalid advertise address \"0.0.0.0\"`},
		{"unknown listeners", `"node": "a", "listeners": "manual"`, `listeners \"manual\": want auto, probe or off`},
		{"weight 0", `"node": "a", "weight": 0`, "weight 0: want 1-100"},
		{"weight heavy", `"node": "a", "weight": "heavy"`, `weight \"heavy\": want \"auto\" or a number 1-100`},
		{"join host malformed", `"node": "a", "gossip": {"join": ["caddy-b.internal:7946", "caddy b:7946"]}`,
			`join address \"caddy b:7946\": host \"caddy b\" is neither an IP address nor a DNS name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := validateJSON(t, `{"apps": {"vipadynamic": {`+tc.app+`}}}`)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("want a refusal saying %q, got %v:\n%s", tc.want, err, out)
			}
		})
	}
}

// TestDistributeAppError: a vipadynamic app that fails to provision is
// reported as what it is, not as a missing app.
func TestDistributeAppError(t *testing.T) {
	out, err := validateJSON(t, `{"apps": {
	"vipadynamic": {"node": "a", "distribute": [{"vipa": "127.0.0.100", "ports": ["0"], "destip": ["all"]}]},
	"layer4": {"servers": {"s": {"listen": ["127.0.0.100:9999"], "routes": [{"handle": [{"handler": "distribute"}]}]}}}}}`)
	if err == nil || !strings.Contains(out, `invalid port \"0\"`) || strings.Contains(out, "must be configured") {
		t.Fatalf("want the app's own error, got %v:\n%s", err, out)
	}
}
