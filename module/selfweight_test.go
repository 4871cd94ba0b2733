package module

import (
	"encoding/json"
	"testing"
)

func TestSelfWeightJSON(t *testing.T) {
	for in, want := range map[string]SelfWeight{`"auto"`: 0, `1`: 1, `100`: 100} {
		var w SelfWeight
		if err := json.Unmarshal([]byte(in), &w); err != nil || w != want {
			t.Errorf("%s: %d %v, want %d", in, w, err, want)
		}
	}
	for _, in := range []string{`0`, `101`, `"40"`, `"Auto"`, `4.5`, `null`, `true`} {
		var w SelfWeight
		if err := json.Unmarshal([]byte(in), &w); err == nil && in != `null` {
			t.Errorf("%s accepted as %d", in, w)
		}
	}
	var a struct {
		W SelfWeight `json:"weight,omitempty"`
	}
	if b, _ := json.Marshal(a); string(b) != `{}` {
		t.Errorf("auto marshals as %s", b)
	}
	a.W = 40
	if b, _ := json.Marshal(a); string(b) != `{"weight":40}` {
		t.Errorf("40 marshals as %s", b)
	}
	if b, _ := json.Marshal(SelfWeight(0)); string(b) != `"auto"` {
		t.Errorf("auto alone marshals as %s", b)
	}
}
