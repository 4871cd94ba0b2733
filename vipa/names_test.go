package vipa

import (
	"strings"
	"testing"
)

// TestNames checks each closed set of names: the default of "", every
// member, and the refusal of anything else with the list in the message.
func TestNames(t *testing.T) {
	type parse func(string) (string, error)
	str := func(f func(string) (string, error)) parse { return f }
	for _, tc := range []struct {
		what    string
		parse   parse
		def     string // what "" gives; empty when "" is refused
		members []string
		refusal string
	}{
		{"distmethod", str(ParseDistmethod), RoundRobin, Distmethods,
			`unknown distmethod "random": want roundrobin, weightedactive, leastconn, hotstandby, sourcehash, targetweight`},
		{"profile", str(ParseProfile), ProfileLAN, Profiles, `unknown gossip profile "random": want lan, fast or wan`},
		{"listeners", str(ParseListeners), ListenersAuto, []string{"auto", "probe", "off"}, `listeners "random": want auto, probe or off`},
		{"takeback", str(ParseTakeback), TakebackWhenIdle, []string{"when_idle", "immediate"}, `takeback "random": want when_idle or immediate`},
		{"row state", func(s string) (string, error) { v, err := ParseRowState(s); return string(v), err }, "",
			[]string{"active", "quiesced", "standby"}, `unknown row state "random"`},
		{"health", func(s string) (string, error) { v, err := ParseHealth(s); return string(v), err }, "",
			[]string{"healthy", "unhealthy"}, `unknown health "random"`},
		{"vipadyn status", func(s string) (string, error) { v, err := ParseVIPADynStatus(s); return string(v), err }, "",
			[]string{"active", "backup", "moving", "quiescing", "none"}, `unknown vipadyn status "random"`},
	} {
		got, err := tc.parse("")
		if tc.def != "" && (err != nil || got != tc.def) {
			t.Errorf("%s: \"\" gives %q, %v; want %q", tc.what, got, err, tc.def)
		}
		if tc.def == "" && err == nil {
			t.Errorf("%s: \"\" accepted as %q", tc.what, got)
		}
		for _, m := range tc.members {
			if got, err := tc.parse(m); err != nil || got != m {
				t.Errorf("%s %q: got %q, %v", tc.what, m, got, err)
			}
		}
		for _, bad := range []string{"random", strings.ToUpper(tc.members[0]), tc.members[0] + " "} {
			_, err := tc.parse(bad)
			if err == nil {
				t.Errorf("%s %q accepted", tc.what, bad)
			}
			if bad == "random" && (err == nil || err.Error() != tc.refusal && !strings.HasPrefix(err.Error(), tc.refusal)) {
				t.Errorf("%s: refusal %v; want %q", tc.what, err, tc.refusal)
			}
		}
	}
}
