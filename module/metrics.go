package module

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
)

// counters are the handler's event counts; atomics on the connection path,
// read only when metrics are scraped.
type counters struct {
	noDefinition atomic.Uint64
	noTarget     atomic.Uint64
	noAnswer     atomic.Uint64
	maxConns     atomic.Uint64 // every target full
	unhealthy    atomic.Uint64 // no healthy target, the unhealthy ones tried failed
	dialFailures atomic.Uint64
	healthDown   atomic.Uint64 // rows turned unhealthy
	healthUp     atomic.Uint64 // rows turned healthy again
	affinities   atomic.Int64  // as of the last sweep
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

const metricsPrefix = "caddy_vipa_"

var (
	readyDesc = prometheus.NewDesc(metricsPrefix+"dpt_ready",
		"Listening sockets of a target for a VIPA port (DPT ready).", []string{"vipa", "port", "node"}, nil)
	activeDesc = prometheus.NewDesc(metricsPrefix+"target_active_connections",
		"Live connections routed to a target.", []string{"vipa", "port", "node"}, nil)
	totalDesc = prometheus.NewDesc(metricsPrefix+"target_connections_total",
		"Connections routed to a target since its row appeared.", []string{"vipa", "port", "node"}, nil)
	bytesDesc = prometheus.NewDesc(metricsPrefix+"target_bytes_total",
		"Bytes relayed by ended connections of a target since its row appeared, by direction (to_target, to_client).",
		[]string{"vipa", "port", "node", "direction"}, nil)
	crtDesc = prometheus.NewDesc(metricsPrefix+"crt_entries",
		"Live routed connections (CRT entries).", nil, nil)
	refusedDesc = prometheus.NewDesc(metricsPrefix+"refused_connections_total",
		"Connections closed without a target, by reason.", []string{"reason"}, nil)
	dialFailDesc = prometheus.NewDesc(metricsPrefix+"dial_failures_total",
		"Failed dials of a target (the next candidate is tried).", nil, nil)
	tsrDesc = prometheus.NewDesc(metricsPrefix+"target_tsr",
		"A target's responsiveness score (TSR) 0-100, from its recent dial outcomes.", []string{"vipa", "port", "node"}, nil)
	healthyDesc = prometheus.NewDesc(metricsPrefix+"target_healthy",
		"1 while a target is healthy, 0 while it is unhealthy.", []string{"vipa", "port", "node"}, nil)
	stateDesc = prometheus.NewDesc(metricsPrefix+"target_state",
		"1 for a target's current state (active, quiesced, standby).", []string{"vipa", "port", "node", "state"}, nil)
	healthTransDesc = prometheus.NewDesc(metricsPrefix+"health_transitions_total",
		"Targets turning unhealthy (to=unhealthy) or healthy again (to=healthy).", []string{"to"}, nil)
	affinityDesc = prometheus.NewDesc(metricsPrefix+"affinities",
		"Client affinities in force (timedaffinity), as of the last sweep.", nil, nil)
	membersDesc = prometheus.NewDesc(metricsPrefix+"members",
		"Fleet members by serf status.", []string{"status"}, nil)
	droppedDesc = prometheus.NewDesc(metricsPrefix+"dropped_peer_data_total",
		"Reports and definitions from peers dropped on receipt, by reason.", []string{"reason"}, nil)
	fleetDesc = prometheus.NewDesc(metricsPrefix+"fleet_events_total",
		"Fleet protocol events: syncs, retries, applied versions, tag updates, refused streams.", []string{"event"}, nil)
)

// collector reads the fleet's tables at scrape time, so the connection path
// pays nothing for metrics.
type collector struct{ f *fleet }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{readyDesc, activeDesc, totalDesc, bytesDesc, tsrDesc, healthyDesc, stateDesc, healthTransDesc, affinityDesc,
		crtDesc, refusedDesc, dialFailDesc, membersDesc, droppedDesc, fleetDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.f.dpt.Rows() {
		labels := []string{r.VIPA.String(), strconv.Itoa(int(r.Port)), r.Node}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, float64(r.Ready), labels...)
		ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(r.ActiveConns), labels...)
		ch <- prometheus.MustNewConstMetric(totalDesc, prometheus.CounterValue, float64(r.TotalConns), labels...)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(r.BytesToTarget), append(labels, "to_target")...)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(r.BytesToClient), append(labels, "to_client")...)
		ch <- prometheus.MustNewConstMetric(tsrDesc, prometheus.GaugeValue, float64(r.TSR), labels...)
		ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, b2f(r.Health == tables.Healthy), labels...)
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, append(labels, r.State.String())...)
	}
	ch <- prometheus.MustNewConstMetric(crtDesc, prometheus.GaugeValue, float64(c.f.crt.Len()))
	n := &c.f.counters
	for reason, v := range map[string]uint64{
		"no_definition": n.noDefinition.Load(),
		"no_target":     n.noTarget.Load(),
		"no_answer":     n.noAnswer.Load(),
		"max_conns":     n.maxConns.Load(),
		"unhealthy":     n.unhealthy.Load(),
	} {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(dialFailDesc, prometheus.CounterValue, float64(n.dialFailures.Load()))
	ch <- prometheus.MustNewConstMetric(healthTransDesc, prometheus.CounterValue, float64(n.healthDown.Load()), "unhealthy")
	ch <- prometheus.MustNewConstMetric(healthTransDesc, prometheus.CounterValue, float64(n.healthUp.Load()), "healthy")
	ch <- prometheus.MustNewConstMetric(affinityDesc, prometheus.GaugeValue, float64(n.affinities.Load()))
	status := make(map[string]int)
	for _, m := range c.f.members() {
		status[m.Status]++
	}
	for s, v := range status {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(v), s)
	}
	for name, v := range c.f.stats() {
		if reason, ok := strings.CutPrefix(name, "drop_"); ok {
			ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(v), reason)
		} else {
			ch <- prometheus.MustNewConstMetric(fleetDesc, prometheus.CounterValue, float64(v), name)
		}
	}
}
