package vipa

import "testing"

func TestParseSelfWeight(t *testing.T) {
	for s, want := range map[string]int{"": 0, "auto": 0, "1": 1, "100": 100, "37": 37} {
		if got, err := ParseSelfWeight(s); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"0", "101", "-1", "Auto", "3.5", "x"} {
		if _, err := ParseSelfWeight(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
