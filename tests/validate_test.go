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
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "validate", "--config", path, "--adapter", "caddyfile")
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
		{"missing keyring file", "gossip 192.0.2.10:7946 {\n\t\t\tkeyring_file " + keyring + ".missing\n\t\t}", "reading keyring"},
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
	if err == nil || !strings.Contains(out, "the vipadynamic app must be configured") {
		t.Fatalf("want a refusal, got %v:\n%s", err, out)
	}
}

// TestDistributeProxyProtocolJSON: a JSON config with an unknown PROXY
// protocol version is refused when the handler is provisioned.
func TestDistributeProxyProtocolJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "caddy.json")
	config := `{"apps": {
	"vipadynamic": {"distribute": [{"vipa": "127.0.0.100", "ports": ["9999"], "destip": ["all"]}]},
	"layer4": {"servers": {"s": {"listen": ["127.0.0.100:9999"], "routes": [
		{"handle": [{"handler": "distribute", "proxy_protocol": "%s"}]}]}}}}}`
	for version, want := range map[string]string{"v3": `proxy_protocol \"v3\": want v1 or v2`, "v1": ""} {
		if err := os.WriteFile(path, []byte(fmt.Sprintf(config, version)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "validate", "--config", path)
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
		out, err := cmd.CombinedOutput()
		switch {
		case want == "" && err != nil:
			t.Errorf("proxy_protocol %s refused: %v\n%s", version, err, out)
		case want != "" && (err == nil || !strings.Contains(string(out), want)):
			t.Errorf("proxy_protocol %s: want a refusal saying %q, got %v:\n%s", version, want, err, out)
		}
	}
}
