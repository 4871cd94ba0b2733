package vipa

import (
	"testing"
	"time"
)

func TestDistributionOptions(t *testing.T) {
	if err := ValidateMaxConns(1); err != nil {
		t.Error(err)
	}
	if err := ValidateMaxConns(0); err == nil || err.Error() != "max_conns 0: want 1 or more (leave it out for unlimited)" {
		t.Errorf("max_conns 0: %v", err)
	}
	if err := ValidateSpan("slow_start", time.Millisecond); err != nil {
		t.Error(err)
	}
	for _, d := range []time.Duration{0, -time.Second} {
		if err := ValidateSpan("timedaffinity", d); err == nil {
			t.Errorf("timedaffinity %v accepted", d)
		}
	}
	if err := ValidateSwitches(HotStandby); err != nil {
		t.Error(err)
	}
	if err := ValidateSwitches(RoundRobin); err == nil {
		t.Error("hotstandby options accepted with roundrobin")
	}
	for in, want := range map[string]bool{"on": true, "off": false} {
		if got, err := ParseSwitch("healthswitch", in); err != nil || got != want {
			t.Errorf("ParseSwitch(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseSwitch("healthswitch", "yes"); err == nil || err.Error() != `healthswitch "yes": want on or off` {
		t.Errorf("ParseSwitch(yes): %v", err)
	}
}
