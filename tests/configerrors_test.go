//go:build linux

package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caddyCmd runs the real binary on a Caddyfile in a directory of its own
// (Caddy's home and data there) and returns its output.
func caddyCmd(t *testing.T, timeout time.Duration, caddyfile string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, append(args, "--config", path, "--adapter", "caddyfile")...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("caddy %s still running after %v:\n%s", args[0], timeout, out)
	}
	return string(out), err
}

// TestKeyringFileOnTheHost: a keyring file that is not on this machine
// does not stop `caddy adapt` (the config may be written for another
// host), but `caddy validate` and `caddy run` refuse it in one line naming
// the file.
func TestKeyringFileOnTheHost(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "vipa.keyring")
	config := "{\n\tadmin off\n\tvipadynamic {\n\t\tnode a\n\t\tgossip 127.0.0.1:7946 {\n\t\t\tkeyring_file " + missing + "\n\t\t}\n\t}\n}\n"
	if out, err := caddyCmd(t, time.Minute, config, "adapt"); err != nil {
		t.Fatalf("adapt refused a keyring file that is not here: %v\n%s", err, out)
	}
	want := "keyring_file " + missing + ": no such file or directory"
	for _, cmd := range []string{"validate", "run"} {
		out, err := caddyCmd(t, time.Minute, config, cmd)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("caddy %s: want a refusal saying %q, got %v:\n%s", cmd, want, err, out)
		}
	}
}

// TestGossipPortInUse: a gossip port another socket holds is found when
// the app starts, not by `caddy validate` (which binds nothing: on a
// running host the port is Caddy's own), and `caddy run` stops saying so,
// whichever of TCP and UDP is taken.
func TestGossipPortInUse(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			var port int
			if network == "tcp" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				port = ln.Addr().(*net.TCPAddr).Port
			} else {
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				port = pc.LocalAddr().(*net.UDPAddr).Port
			}
			config := fmt.Sprintf("{\n\tadmin off\n\tvipadynamic {\n\t\tnode a\n\t\tgossip 127.0.0.1:%d\n\t}\n}\n", port)
			if out, err := caddyCmd(t, time.Minute, config, "validate"); err != nil {
				t.Fatalf("validate refused a config whose gossip port is taken: %v\n%s", err, out)
			}
			out, err := caddyCmd(t, time.Minute, config, "run")
			want := fmt.Sprintf("gossip 127.0.0.1:%d: port %d is in use", port, port)
			if err == nil || !strings.Contains(out, want) {
				t.Fatalf("caddy run: want it to stop saying %q, got %v:\n%s", want, err, out)
			}
		})
	}
}
