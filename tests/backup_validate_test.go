//go:build linux

package tests

import (
	"strings"
	"testing"
)

// TestBackupProvisionRules: what only the host or the JSON config can show
// is refused at provision: an interface the host lacks (named by the
// Caddyfile's line), and a JSON backup
// of the node's own VIPA or out of rank.
func TestBackupProvisionRules(t *testing.T) {
	out, err := validate(t, "{\n\tvipadynamic {\n\t\tnode a\n\t\tvipa_interface nosuchif0\n\t\tvipabackup 10.0.0.100 rank 100\n\t}\n}\n")
	if err == nil || !strings.Contains(out, "Caddyfile:4: vipa_interface nosuchif0: no such interface on this host (it has ") || !strings.Contains(out, "lo") {
		t.Fatalf("unknown interface: want a refusal, got %v:\n%s", err, out)
	}
	for _, tc := range []struct{ name, app, want string }{
		{"own VIPA", `"distribute": [{"vipa": "10.0.0.100", "ports": ["80"], "destip": ["all"]}],
			"backups": [{"vipa": "10.0.0.100", "rank": 1}]`, "a routing node cannot back up its own VIPA"},
		{"rank 255", `"backups": [{"vipa": "10.0.0.100", "rank": 255}]`, "rank 255: want 1-254"},
		{"twice", `"backups": [{"vipa": "10.0.0.100", "rank": 2}, {"vipa": "10.0.0.100", "rank": 1}]`, "already backed up"},
		{"takeback", `"backups": [{"vipa": "10.0.0.100", "rank": 2, "takeback": "never"}]`, "want when_idle or immediate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := validateJSON(t, `{"apps": {"vipadynamic": {"node": "a", `+tc.app+`}}}`)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("want a refusal saying %q, got %v:\n%s", tc.want, err, out)
			}
		})
	}
}
