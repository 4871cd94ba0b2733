package caddyfile

import (
	"strings"
	"testing"
)

func TestWeightOption(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"weight", "Caddyfile:3: wrong argument count"},
		{"weight 0", `Caddyfile:3: weight 0: want 1-100, or auto`},
		{"weight 101", `Caddyfile:3: weight 101: want 1-100, or auto`},
		{"weight heavy", `Caddyfile:3: weight "heavy": want auto or 1-100`},
		{"weight 5 6", "Caddyfile:3: wrong argument count"},
		{"weight 5\n\t\tweight 6", "Caddyfile:4: duplicate vipadynamic option 'weight'"},
	} {
		err := adapt(t, "{\n\tvipadynamic {\n\t\t"+tc.body+"\n\t}\n}")
		// tc.want is "Caddyfile:N: message": Caddy puts the place last.
		where, msg, _ := strings.Cut(tc.want, ": ")
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.HasSuffix(err.Error(), "at "+where) {
			t.Errorf("%q: %v, want %q", tc.body, err, tc.want)
		}
	}
	for _, ok := range []string{"weight auto", "weight 1", "weight 100"} {
		if err := adapt(t, "{\n\tvipadynamic {\n\t\t"+ok+"\n\t}\n}"); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
