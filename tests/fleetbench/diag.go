//go:build linux

package main

import (
	"bufio"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// fleetCounters reads each node's caddy_vipa_ fleet and drop counters from
// its /metrics, so a slow trial can be matched with retries or drops.
func fleetCounters(f *fleet) map[string]float64 {
	out := map[string]float64{}
	for _, n := range f.nodes {
		resp, err := adminClient.Get("http://" + n.admin + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "caddy_vipa_fleet_events_total") && !strings.HasPrefix(line, "caddy_vipa_dropped_peer_data_total") {
				continue
			}
			name, val, ok := strings.Cut(line, " ")
			if v, err := strconv.ParseFloat(val, 64); ok && err == nil {
				out[n.name+" "+strings.TrimPrefix(name, "caddy_vipa_")] = v
			}
		}
		resp.Body.Close()
	}
	return out
}

// counterDelta lists the counters that moved between two readings.
func counterDelta(before, after map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if d := after[k] - before[k]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s +%g", k, d))
		}
	}
	return strings.Join(parts, ", ")
}
