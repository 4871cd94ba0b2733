package module

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
)

// TestHealthTransitionsBySource: health_transitions_total shows a node's
// own findings and those carried from a routing node under separate
// source labels.
func TestHealthTransitionsBySource(t *testing.T) {
	f := fleet.New()
	f.Counters.HealthDown.Add(2)
	f.Counters.HealthUp.Add(1)
	f.Counters.HealthDownCarried.Add(3)
	f.Counters.HealthUpCarried.Add(4)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{f})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != metricsPrefix+"health_transitions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var to, source string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "to":
					to = l.GetValue()
				case "source":
					source = l.GetValue()
				}
			}
			got[[2]string{to, source}] = m.GetCounter().GetValue()
		}
	}
	want := map[[2]string]float64{{"unhealthy", "own"}: 2, {"healthy", "own"}: 1, {"unhealthy", "carried"}: 3, {"healthy", "carried"}: 4}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v = %v, want %v", k, got[k], v)
		}
	}
}
