package vipa

import (
	"fmt"
	"strconv"
)

// WeightAuto is the target's own weight derived from its host's spare CPU
// capacity (distmethod targetweight); it is the default.
const WeightAuto = "auto"

// ParseSelfWeight checks the weight a target node reports for itself:
// "auto" (or "") is 0, a fixed weight is 1-100.
func ParseSelfWeight(s string) (int, error) {
	if s == "" || s == WeightAuto {
		return 0, nil
	}
	w, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("weight %q: want auto or %d-%d", s, MinWeight, MaxWeight)
	}
	if err := ValidateWeight(w); err != nil {
		return 0, fmt.Errorf("%v, or auto", err)
	}
	return w, nil
}
