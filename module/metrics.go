package module

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

const metricsPrefix = "caddy_vipa_"

// rowLabels label the per-row metrics: the rows /vipa/dpt shows
// (fleet.DPTViewRoles), with their role (routing, backup, target), so a
// sum over the fleet's scrapes of role="routing" counts each row once.
var rowLabels = []string{"vipa", "port", "node", "role"}

var (
	readyDesc = prometheus.NewDesc(metricsPrefix+"dpt_ready",
		"Listening sockets of a target for a VIPA port (DPT ready).", rowLabels, nil)
	activeDesc = prometheus.NewDesc(metricsPrefix+"target_active_connections",
		"Live connections routed to a target.", rowLabels, nil)
	totalDesc = prometheus.NewDesc(metricsPrefix+"target_connections_total",
		"Connections routed to a target since its row appeared.", rowLabels, nil)
	bytesDesc = prometheus.NewDesc(metricsPrefix+"target_bytes_total",
		"Bytes relayed by ended connections of a target since its row appeared, by direction (to_target, to_client).",
		append(rowLabels[:4:4], "direction"), nil)
	crtDesc = prometheus.NewDesc(metricsPrefix+"crt_entries",
		"Live routed connections (CRT entries).", nil, nil)
	refusedDesc = prometheus.NewDesc(metricsPrefix+"refused_connections_total",
		"Connections closed without a target, by reason.", []string{"reason"}, nil)
	dialFailDesc = prometheus.NewDesc(metricsPrefix+"dial_failures_total",
		"Failed dials of a target (the next candidate is tried).", nil, nil)
	tsrDesc = prometheus.NewDesc(metricsPrefix+"target_tsr",
		"A target's responsiveness score (TSR) 0-100, from its recent dial outcomes.", rowLabels, nil)
	healthyDesc = prometheus.NewDesc(metricsPrefix+"target_healthy",
		"1 while a target is healthy, 0 while it is unhealthy.", rowLabels, nil)
	stateDesc = prometheus.NewDesc(metricsPrefix+"target_state",
		"1 for a target's current state (active, quiesced, standby).", append(rowLabels[:4:4], "state"), nil)
	reportStateDesc = prometheus.NewDesc(metricsPrefix+"report_state",
		"1 for the state this node reports for its own row as a target (active, quiesced).", []string{"vipa", "port", "state"}, nil)
	selfWeightDesc = prometheus.NewDesc(metricsPrefix+"self_weight",
		"The weight this node reports for itself as a target (weight auto or fixed), for distmethod targetweight.", nil, nil)
	healthTransDesc = prometheus.NewDesc(metricsPrefix+"health_transitions_total",
		"Targets turning unhealthy (to=unhealthy) or healthy again (to=healthy), by this node's dials and probes (source=own) or, on a standby, by the health its routing node shares (source=carried).", []string{"to", "source"}, nil)
	affinityDesc = prometheus.NewDesc(metricsPrefix+"affinities",
		"Client affinities held (timedaffinity): each from its client's first connection until the sweep after it expires (every 5 s).", nil, nil)
	acceptErrDesc = prometheus.NewDesc(metricsPrefix+"accept_errors_total",
		"Failed accepts on VIPA listeners, retried after a pause, by reason (descriptors, other).", []string{"reason"}, nil)
	membersDesc = prometheus.NewDesc(metricsPrefix+"members",
		"Fleet members by serf status.", []string{"status"}, nil)
	droppedDesc = prometheus.NewDesc(metricsPrefix+"dropped_peer_data_total",
		"Reports and definitions from peers dropped on receipt, by reason.", []string{"reason"}, nil)
	driftDesc = prometheus.NewDesc(metricsPrefix+"crt_drift",
		"Per DPT row: the routing node's active connections minus those the target reports holding from it.", []string{"vipa", "port", "node"}, nil)
	dynamicDesc = prometheus.NewDesc(metricsPrefix+"dynamic_ports",
		"VIPA ports this routing node opened for its port all definitions.", nil, nil)
	dynamicRefusedDesc = prometheus.NewDesc(metricsPrefix+"dynamic_ports_refused_total",
		"Ports reported by targets of a port all definition that this node did not open, by reason (limit, listen).", []string{"reason"}, nil)
	fleetDesc = prometheus.NewDesc(metricsPrefix+"fleet_events_total",
		"Fleet protocol events: syncs, retries, applied versions, tag updates, refused streams.", []string{"event"}, nil)
)

// collector reads the fleet's tables at scrape time, so the connection path
// pays nothing for metrics.
type collector struct{ f *fleet.Fleet }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{readyDesc, activeDesc, totalDesc, bytesDesc, tsrDesc, healthyDesc, stateDesc, reportStateDesc, selfWeightDesc, healthTransDesc, affinityDesc,
		crtDesc, refusedDesc, dialFailDesc, acceptErrDesc, membersDesc, droppedDesc, fleetDesc, driftDesc, dynamicDesc, dynamicRefusedDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	collectRows(ch, c.f.DPTViewRoles())
	for _, l := range c.f.OwnReport() {
		st := vipa.StateActive
		if l.State == vipa.StateQuiesced {
			st = l.State
		}
		ch <- prometheus.MustNewConstMetric(reportStateDesc, prometheus.GaugeValue, 1, l.VIPA.String(), strconv.Itoa(int(l.Port)), string(st))
	}
	ch <- prometheus.MustNewConstMetric(selfWeightDesc, prometheus.GaugeValue, float64(c.f.SelfWeight()))
	ch <- prometheus.MustNewConstMetric(crtDesc, prometheus.GaugeValue, float64(c.f.CRT.Len()))
	for _, d := range c.f.Drifts() {
		ch <- prometheus.MustNewConstMetric(driftDesc, prometheus.GaugeValue, float64(d.Drift), d.VIPA.String(), strconv.Itoa(int(d.Port)), d.Node)
	}
	n := &c.f.Counters
	for reason, v := range map[string]uint64{
		"no_definition": n.NoDefinition.Load(),
		"no_target":     n.NoTarget.Load(),
		"no_answer":     n.NoAnswer.Load(),
		"max_conns":     n.MaxConns.Load(),
		"unhealthy":     n.Unhealthy.Load(),
		"descriptors":   n.NoDescriptors.Load(),
	} {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(dialFailDesc, prometheus.CounterValue, float64(n.DialFailures.Load()))
	ch <- prometheus.MustNewConstMetric(dynamicDesc, prometheus.GaugeValue, float64(n.DynamicOpen.Load()))
	ch <- prometheus.MustNewConstMetric(dynamicRefusedDesc, prometheus.CounterValue, float64(n.DynamicRefused.Load()), "limit")
	ch <- prometheus.MustNewConstMetric(dynamicRefusedDesc, prometheus.CounterValue, float64(n.DynamicFailed.Load()), "listen")
	ch <- prometheus.MustNewConstMetric(healthTransDesc, prometheus.CounterValue, float64(n.HealthDown.Load()), "unhealthy", "own")
	ch <- prometheus.MustNewConstMetric(healthTransDesc, prometheus.CounterValue, float64(n.HealthUp.Load()), "healthy", "own")
	ch <- prometheus.MustNewConstMetric(healthTransDesc, prometheus.CounterValue, float64(n.HealthDownCarried.Load()), "unhealthy", "carried")
	ch <- prometheus.MustNewConstMetric(healthTransDesc, prometheus.CounterValue, float64(n.HealthUpCarried.Load()), "healthy", "carried")
	ch <- prometheus.MustNewConstMetric(affinityDesc, prometheus.GaugeValue, float64(c.f.CRT.AffinityLen()))
	ch <- prometheus.MustNewConstMetric(acceptErrDesc, prometheus.CounterValue, float64(n.AcceptNoDescriptors.Load()), "descriptors")
	ch <- prometheus.MustNewConstMetric(acceptErrDesc, prometheus.CounterValue, float64(n.AcceptOther.Load()), "other")
	status := make(map[string]int)
	for _, m := range c.f.Members() {
		status[m.Status]++
	}
	for s, v := range status {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(v), s)
	}
	for name, v := range c.f.Stats() {
		if reason, ok := strings.CutPrefix(name, "drop_"); ok {
			ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(v), reason)
		} else {
			ch <- prometheus.MustNewConstMetric(fleetDesc, prometheus.CounterValue, float64(v), name)
		}
	}
}

// collectRows exports the per-row metrics of rows: those of /vipa/dpt.
func collectRows(ch chan<- prometheus.Metric, rows []fleet.ViewRow) {
	for _, r := range rows {
		labels := []string{r.VIPA.String(), strconv.Itoa(int(r.Port)), r.Node, string(r.Role)}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, float64(r.Ready), labels...)
		ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(r.ActiveConns), labels...)
		ch <- prometheus.MustNewConstMetric(totalDesc, prometheus.CounterValue, float64(r.TotalConns), labels...)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(r.BytesToTarget), append(labels, "to_target")...)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(r.BytesToClient), append(labels, "to_client")...)
		ch <- prometheus.MustNewConstMetric(tsrDesc, prometheus.GaugeValue, float64(r.TSR), labels...)
		ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, b2f(r.Health == tables.Healthy), labels...)
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, append(labels, r.State.String())...)
	}
}
