package caddyfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func adapt(t *testing.T, body string) error {
	t.Helper()
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
	return err
}

func TestErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"invalid VIPA", `{
	vipadynamic {
		vipadistribute define 300.1.2.3 port 80 destip all
	}
}`, `Caddyfile:3: invalid VIPA "300.1.2.3": want a unicast IP address`},
		{"port 0", `{
	vipadynamic {
		node a
		vipadistribute define 127.0.0.100 port 0 destip all
	}
}`, `Caddyfile:4: vipadistribute 127.0.0.100: invalid port "0"`},
		{"port above 65535", `{
	vipadynamic {
		vipadistribute define 127.0.0.100 port 80 65536 destip all
	}
}`, `Caddyfile:3: vipadistribute 127.0.0.100: invalid port "65536"`},
		{"reversed range", `{
	vipadynamic {
		vipadistribute define 127.0.0.100 port 90-80 destip all
	}
}`, "Caddyfile:3: vipadistribute 127.0.0.100: port range \"90-80\": end is below start"},
		{"empty destip", `{
	vipadynamic {
		vipadistribute define 127.0.0.100 port 80 destip
	}
}`, "Caddyfile:3: vipadistribute 127.0.0.100: empty destip list"},
		{"missing destip", `{
	vipadynamic {
		vipadistribute define 127.0.0.100 port 80
	}
}`, "Caddyfile:3: vipadistribute 127.0.0.100: missing destip"},
		{"missing port", `{
	vipadynamic {
		vipadistribute 127.0.0.100 {
			destip all
		}
	}
}`, "Caddyfile:5: vipadistribute 127.0.0.100: missing port"},
		{"all with others", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 destip all caddy-b
	}
}`, "Caddyfile:3: vipadistribute 127.0.0.100: destip all excludes other destinations"},
		{"unknown statement option", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 destip all {
			weight 3
		}
	}
}`, "Caddyfile:4: unknown vipadistribute option 'weight'"},
		{"unknown inline word", `{
	vipadynamic {
		vipadistribute 127.0.0.100 ports 80 destip all
	}
}`, "Caddyfile:3: unknown vipadistribute option 'ports'"},
		{"unknown distmethod", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 destip all {
			distmethod random
		}
	}
}`, `Caddyfile:4: vipadistribute 127.0.0.100: unknown distmethod "random": want roundrobin, weightedactive`},
		{"duplicate port option", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 destip all {
			port 81
		}
	}
}`, "Caddyfile:4: duplicate vipadistribute option 'port'"},
		{"port all mixed with a port list", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 all destip all
	}
}`, "Caddyfile:3: vipadistribute 127.0.0.100: port all cannot be mixed with a port list"},
		{"port all mixed with a port list in a block", `{
	vipadynamic {
		vipadistribute 127.0.0.100 destip all {
			port all 8080
		}
	}
}`, "Caddyfile:4: vipadistribute 127.0.0.100: port all cannot be mixed with a port list"},
		{"exclude outside port all", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 destip all {
			exclude 22
		}
	}
}`, "Caddyfile:4: vipadistribute 127.0.0.100: exclude needs port all"},
		{"exclude under a port list", `{
	vipadynamic {
		vipadistribute 127.0.0.100 destip all {
			port 80 {
				exclude 22
			}
		}
	}
}`, "Caddyfile:5: vipadistribute 127.0.0.100: exclude needs port all"},
		{"bad exclude", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port all destip all {
			exclude 70000
		}
	}
}`, `Caddyfile:4: vipadistribute 127.0.0.100: exclude: invalid port "70000"`},
		{"exclude everything", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port all destip all {
			exclude 1-65535
		}
	}
}`, "vipadistribute 127.0.0.100: exclude leaves no port"},
		{"VIPA repeated", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 destip all
		vipadistribute 127.0.0.100 port 81 destip all
	}
}`, "Caddyfile:4: VIPA 127.0.0.100 is already defined"},
		{"unknown vipadynamic option", `{
	vipadynamic {
		nodes a
	}
}`, "Caddyfile:3: unknown vipadynamic option 'nodes'"},
		{"duplicate node", `{
	vipadynamic {
		node a
		node b
	}
}`, "Caddyfile:4: duplicate vipadynamic option 'node'"},
		{"bad advertise", `{
	vipadynamic {
		advertise caddy-a.example
	}
}`, `Caddyfile:3: invalid advertise address "caddy-a.example"`},
		{"bad gossip address", `{
	vipadynamic {
		gossip 127.0.0.1
	}
}`, `Caddyfile:3: invalid gossip address "127.0.0.1": want host:port`},
		{"bad gossip host", `{
	vipadynamic {
		gossip caddy_a!:7946
	}
}`, `Caddyfile:3: invalid gossip address "caddy_a!:7946": host "caddy_a!" is neither an IP address nor a DNS name`},
		{"bad join address", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			join nowhere
		}
	}
}`, "Caddyfile:4: invalid join address \"nowhere\": want host:port"},
		{"bad join host", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			join caddy-b.internal:7946 caddy_b!:7946
		}
	}
}`, `Caddyfile:4: invalid join address "caddy_b!:7946": host "caddy_b!" is neither an IP address nor a DNS name`},
		{"bad join port", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			join caddy-b.internal:0
		}
	}
}`, `Caddyfile:4: invalid join address "caddy-b.internal:0": port "0": want 1-65535`},
		{"bad key", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			encrypt_key c2hvcnQ=
		}
	}
}`, "Caddyfile:4: encrypt_key: gossip key:"},
		{"key and keyring", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			encrypt_key 3k7VBm6mYxT6kzF8xj0s0m9cRSuqkC3QfWzE4u8i5Bw=
			keyring_file /etc/caddy/vipa.keyring
		}
	}
}`, "Caddyfile:5: gossip: keyring_file and encrypt_key are exclusive"},
		{"unknown profile", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			profile turbo
		}
	}
}`, `Caddyfile:4: unknown gossip profile "turbo": want lan, fast or wan`},
		{"unknown gossip option", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			retransmit 4
		}
	}
}`, "Caddyfile:4: unknown gossip option 'retransmit'"},
		{"bad listeners", `{
	vipadynamic {
		listeners manual
	}
}`, `Caddyfile:3: listeners "manual": want auto, probe or off`},
		{"bad interval", `{
	vipadynamic {
		listeners auto {
			interval soon
		}
	}
}`, "Caddyfile:4: invalid listeners interval 'soon'"},
		{"bad proxy_protocol", `{
	layer4 {
		127.0.0.100:80 {
			route {
				distribute {
					proxy_protocol v3
				}
			}
		}
	}
}`, "Caddyfile:6: distribute: invalid proxy_protocol 'v3': want v1 or v2"},
		{"bad max_attempts", `{
	layer4 {
		127.0.0.100:80 {
			route {
				distribute {
					max_attempts 0
				}
			}
		}
	}
}`, "Caddyfile:6: distribute: invalid max_attempts '0': want a number ≥ 1"},
		{"unknown distribute option", `{
	layer4 {
		127.0.0.100:80 {
			route {
				distribute {
					retries 2
				}
			}
		}
	}
}`, "Caddyfile:6: unknown distribute option 'retries'"},
		{"node name with a space", `{
	vipadynamic {
		node "caddy a"
	}
}`, `Caddyfile:3: node name "caddy a": want letters, digits, '-' and '.'`},
		{"node name of 200", `{
	vipadynamic {
		node ` + strings.Repeat("n", 200) + `
	}
}`, "Caddyfile:3: node name is 200 characters: at most 128"},
		{"label of 300", `{
	vipadynamic {
		gossip 127.0.0.1:7946 {
			label ` + strings.Repeat("l", 300) + `
		}
	}
}`, "Caddyfile:4: gossip label is 300 bytes: at most 255"},
		{"wildcard gossip without a key", `{
	vipadynamic {
		advertise 10.0.0.11
		gossip 0.0.0.0:7946
	}
}`, "Caddyfile:4: gossip bind address 0.0.0.0:7946 is not loopback: set encrypt_key or keyring_file"},
		{"wildcard gossip without advertise", `{
	vipadynamic {
		gossip 0.0.0.0:7946 {
			insecure
		}
	}
}`, "Caddyfile:6: advertise address is required when gossip binds the wildcard address"},
		{"advertise wildcard", `{
	vipadynamic {
		advertise 0.0.0.0
	}
}`, `Caddyfile:3: invalid advertise address "0.0.0.0": want a unicast address`},
		{"destip name of 300", `{
	vipadynamic {
		vipadistribute 127.0.0.100 port 80 destip ` + strings.Repeat("d", 300) + `
	}
}`, "Caddyfile:3: vipadistribute 127.0.0.100: destip: node name is 300 characters: at most 128"},
		{"destip in the block", `{
	vipadynamic {
		vipadistribute 127.0.0.100 {
			port 80
			destip caddy-b caddy_c
		}
	}
}`, `Caddyfile:5: vipadistribute 127.0.0.100: destip: node name "caddy_c"`},
		{"distribute VIPA", `{
	layer4 {
		127.0.0.100:80 {
			route {
				distribute 224.0.0.1
			}
		}
	}
}`, `Caddyfile:5: distribute: invalid VIPA "224.0.0.1": want a unicast IP address`},
		{"two blocks", `{
	vipadynamic {
		node a
	}
	vipadynamic {
		node b
	}
}`, "Caddyfile:5: duplicate global option 'vipadynamic'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := adapt(t, tc.body)
			if err == nil {
				t.Fatalf("adapted without error; want %q", tc.want)
			}
			// tc.want is "Caddyfile:N: message": Caddy puts the place last.
			where, msg, ok := strings.Cut(tc.want, ": ")
			if !ok || !strings.HasPrefix(where, "Caddyfile:") {
				msg, where = tc.want, ""
			}
			if !strings.Contains(err.Error(), msg) {
				t.Fatalf("error %q\nwant it to contain %q", err, msg)
			}
			if where != "" && !strings.HasSuffix(err.Error(), "at "+where) {
				t.Fatalf("error %q\nwant it to end with %q", err, "at "+where)
			}
		})
	}
}

func TestValidBlockAdapts(t *testing.T) {
	err := adapt(t, `{
	vipadynamic {
		node caddy-a
		vipadistribute define 127.0.0.100 port 8080 8443 destip all
		vipadistribute 127.0.0.101 port 9000-9009 destip caddy-b caddy-c {
			distmethod roundrobin
		}
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
}

// TestKeyringFileRead: a keyring file found where the Caddyfile is adapted
// is read then, so a malformed or empty one names the line.
func TestKeyringFileRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"good", write("good", `["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]`), ""},
		{"elsewhere", filepath.Join(dir, "missing"), ""}, // read where the config runs
		{"not JSON", write("notjson", "not json"), "want a JSON array of base64 keys"},
		{"empty", write("empty", "[]"), "holds no key"},
	} {
		err := adapt(t, "{\n\tvipadynamic {\n\t\tgossip 127.0.0.1:7946 {\n\t\t\tkeyring_file "+tc.path+"\n\t\t}\n\t}\n}")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), "at Caddyfile:4")):
			t.Errorf("%s: %v; want %q at Caddyfile:4", tc.name, err, tc.want)
		}
	}
}
