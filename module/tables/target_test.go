package tables

import "testing"

func TestState(t *testing.T) {
	for _, tc := range []struct {
		s    State
		name string
	}{
		{Active, "active"},
		{Quiesced, "quiesced"},
	} {
		if got := tc.s.String(); got != tc.name {
			t.Errorf("%d.String() = %q, want %q", tc.s, got, tc.name)
		}
		var s State
		if err := s.UnmarshalText([]byte(tc.name)); err != nil || s != tc.s {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tc.name, s, err, tc.s)
		}
	}
	if got := State(7).String(); got != "State(7)" {
		t.Errorf("State(7).String() = %q", got)
	}
	if _, err := ParseState("draining"); err == nil {
		t.Error("ParseState(draining): no error")
	}
}
