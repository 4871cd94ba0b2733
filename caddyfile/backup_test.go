package caddyfile

import (
	"strings"
	"testing"
)

// TestBackupErrorsNameFileAndLine: every wrong vipabackup or vipa_interface
// names the file and the line of the statement.
func TestBackupErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"own VIPA, backup after", `{
	vipadynamic {
		vipadistribute 10.0.0.100 port 80 destip all
		vipabackup 10.0.0.100 rank 100
	}
}`, "Caddyfile:4: vipabackup 10.0.0.100: this node defines the VIPA"},
		{"own VIPA, backup before", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 100
		vipadistribute 10.0.0.100 port 80 destip all
	}
}`, "Caddyfile:4: vipadistribute 10.0.0.100: this node backs the VIPA up"},
		{"rank 0", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 0
	}
}`, "Caddyfile:3: vipabackup 10.0.0.100: rank 0: want 1-254"},
		{"rank 255", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 255
	}
}`, "Caddyfile:3: vipabackup 10.0.0.100: rank 255: want 1-254"},
		{"rank not a number", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank high
	}
}`, `Caddyfile:3: vipabackup 10.0.0.100: rank "high": want a number 1-254`},
		{"no rank", `{
	vipadynamic {
		vipabackup 10.0.0.100
	}
}`, "Caddyfile:3: vipabackup: want <vipa> rank <1-254>"},
		{"bad VIPA", `{
	vipadynamic {
		vipabackup 10.0.0.300 rank 1
	}
}`, `Caddyfile:3: vipabackup: invalid VIPA "10.0.0.300"`},
		{"bad takeback", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 100 {
			takeback later
		}
	}
}`, `Caddyfile:4: vipabackup 10.0.0.100: takeback "later": want when_idle or immediate`},
		{"bad max_wait", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 100 {
			max_wait soon
		}
	}
}`, "Caddyfile:4: vipabackup 10.0.0.100: invalid max_wait 'soon'"},
		{"max_wait with immediate", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 100 {
			takeback immediate
			max_wait 1m
		}
	}
}`, "Caddyfile:6: vipabackup 10.0.0.100: max_wait needs takeback when_idle"},
		{"duplicate option", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 100 {
			takeback immediate
			takeback when_idle
		}
	}
}`, "Caddyfile:5: duplicate vipabackup option 'takeback'"},
		{"unknown option", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 100 {
			preempt on
		}
	}
}`, "Caddyfile:4: unknown vipabackup option 'preempt'"},
		{"duplicate VIPA", `{
	vipadynamic {
		vipabackup 10.0.0.100 rank 100
		vipabackup 10.0.0.100 rank 50
	}
}`, "Caddyfile:4: vipabackup 10.0.0.100: VIPA already backed up"},
		{"duplicate vipa_interface", `{
	vipadynamic {
		vipa_interface eth0
		vipa_interface eth1
	}
}`, "Caddyfile:4: duplicate vipadynamic option 'vipa_interface'"},
		{"vipa_interface name", `{
	vipadynamic {
		vipa_interface eth0/1
	}
}`, `Caddyfile:3: vipa_interface "eth0/1": not an interface name`},
		{"vipa_interface too long", `{
	vipadynamic {
		vipa_interface a-very-long-interface
	}
}`, `Caddyfile:3: vipa_interface "a-very-long-interface": at most 15 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := adapt(t, tc.body)
			if err == nil {
				t.Fatalf("adapted without error; want %q", tc.want)
			}
			where, msg, _ := strings.Cut(tc.want, ": ")
			if !strings.Contains(err.Error(), msg) {
				t.Fatalf("error %q\nwant it to contain %q", err, msg)
			}
			if !strings.HasSuffix(err.Error(), "at "+where) {
				t.Fatalf("error %q\nwant it to end with %q", err, "at "+where)
			}
		})
	}
}
