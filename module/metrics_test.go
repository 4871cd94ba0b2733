package module

import (
	"fmt"
	"maps"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
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

// series gathers c's metrics as "name{label="value",...}" → value, labels
// sorted by name as Prometheus writes them.
func series(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			slices.Sort(ls)
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

// TestDistributionMetrics: the per-row health and state, the refusals by
// reason and the affinity count appear under their documented names.
func TestDistributionMetrics(t *testing.T) {
	f := fleet.New()
	v := netip.MustParseAddr("127.0.0.100")
	setRow(f, tables.Row{VIPA: v, Port: 80, Node: "a", Address: netip.MustParseAddrPort("127.0.0.1:80"), Ready: 1})
	setRow(f, tables.Row{VIPA: v, Port: 80, Node: "b", Address: netip.MustParseAddrPort("127.0.0.2:80"), Ready: 1, State: tables.Quiesced})
	for _, tg := range f.DPT.Lookup(v, 80).All() {
		if tg.Node == "a" {
			tg.DialFailed(time.Now(), true)
		}
	}
	f.Counters.MaxConns.Add(2)
	f.Counters.Unhealthy.Add(1)
	got := series(t, collector{f})
	var rows []fleet.ViewRow // as a routing node's view shows them
	for _, r := range f.DPT.Rows() {
		rows = append(rows, fleet.ViewRow{Row: r, Role: fleet.RoleRouting})
	}
	maps.Copy(got, series(t, rowsCollector(rows)))
	row := func(node string) string { return `node="` + node + `",port="80",role="routing",vipa="127.0.0.100"` }
	for name, want := range map[string]float64{
		"caddy_vipa_target_tsr{" + row("b") + "}":                                                        100,
		"caddy_vipa_target_healthy{" + row("a") + "}":                                                    0,
		"caddy_vipa_target_healthy{" + row("b") + "}":                                                    1,
		`caddy_vipa_target_state{node="a",port="80",role="routing",state="active",vipa="127.0.0.100"}`:   1,
		`caddy_vipa_target_state{node="b",port="80",role="routing",state="quiesced",vipa="127.0.0.100"}`: 1,
		`caddy_vipa_refused_connections_total{reason="max_conns"}`:                                       2,
		`caddy_vipa_refused_connections_total{reason="unhealthy"}`:                                       1,
		`caddy_vipa_affinities{}`:                                                                        0,
		`caddy_vipa_health_transitions_total{source="own",to="unhealthy"}`:                               0,
		"caddy_vipa_target_active_connections{" + row("a") + "}":                                         0,
	} {
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, want)
		}
	}
	if tsr, ok := got["caddy_vipa_target_tsr{"+row("a")+"}"]; !ok || tsr >= 100 {
		t.Errorf("the failed row's caddy_vipa_target_tsr = %v (present %v), want below 100", tsr, ok)
	}
}

// rowsCollector exports the per-row metrics of its rows.
type rowsCollector []fleet.ViewRow

func (c rowsCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }
func (c rowsCollector) Collect(ch chan<- prometheus.Metric) { collectRows(ch, c) }

// TestRowMetricsAreDPTView: the per-row metrics export the rows /vipa/dpt
// shows, not every row of the DPT. This node holds DPT rows of a VIPA it
// does not route (no definition gives it to this node), so /vipa/dpt
// shows none of them and neither do the metrics; summed over the fleet's
// scrapes, such rows would count beside the routing node's own.
func TestRowMetricsAreDPTView(t *testing.T) {
	f := fleet.New()
	v := netip.MustParseAddr("127.0.0.100")
	setRow(f, tables.Row{VIPA: v, Port: 80, Node: "a", Address: netip.MustParseAddrPort("127.0.0.1:80"), Ready: 1})
	setRow(f, tables.Row{VIPA: v, Port: 80, Node: "b", Address: netip.MustParseAddrPort("127.0.0.2:80"), Ready: 2})
	if len(f.DPT.Rows()) != 2 {
		t.Fatalf("DPT %+v, want 2 rows", f.DPT.Rows())
	}
	view, err := dptRows(f, httptest.NewRequest("GET", "/vipa/dpt", nil))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range view {
		want = append(want, fmt.Sprintf("%s:%d %s", r.VIPA, r.Port, r.Node))
	}
	got := rowSeries(t, collector{f})
	if !slices.Equal(got, want) {
		t.Errorf("caddy_vipa_dpt_ready rows %q, /vipa/dpt rows %q", got, want)
	}
}

// rowSeries lists the rows of c's caddy_vipa_dpt_ready series as
// "vipa:port node", sorted.
func rowSeries(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	var out []string
	for name := range series(t, c) {
		rest, ok := strings.CutPrefix(name, metricsPrefix+"dpt_ready{")
		if !ok {
			continue
		}
		l := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(v, `"`)
		}
		out = append(out, l["vipa"]+":"+l["port"]+" "+l["node"])
	}
	slices.Sort(out)
	return out
}

// TestAffinitiesMetricCurrent: caddy_vipa_affinities counts an affinity
// from its client's first connection, not from the next sweep, and drops
// it at the sweep after it expires.
func TestAffinitiesMetricCurrent(t *testing.T) {
	f := fleet.New()
	v := netip.MustParseAddr("127.0.0.100")
	const ttl = time.Minute
	if err := f.DPT.SetPolicy(v, &tables.Policy{TimedAffinity: ttl}); err != nil {
		t.Fatal(err)
	}
	setRow(f, tables.Row{VIPA: v, Port: 80, Node: "a", Address: netip.MustParseAddrPort("127.0.0.1:80"), Ready: 1})
	affinities := func() float64 { return series(t, collector{f})["caddy_vipa_affinities{}"] }
	now := time.Now()
	open := func(client string) *tables.Entry {
		c := f.DPT.Lookup(v, 80).Pick(f.CRT, netip.MustParseAddr(client), now)
		e := f.CRT.Acquire()
		e.Client, e.VIPA, e.Port, e.Target = netip.MustParseAddrPort(client+":40000"), v, 80, c.Next()
		f.CRT.Insert(e)
		c.Commit(e)
		return e
	}
	e1 := open("198.51.100.1")
	if n := affinities(); n != 1 {
		t.Errorf("after a client's first connection: %v affinities, want 1", n)
	}
	e2 := open("198.51.100.1")
	e3 := open("198.51.100.2")
	if n := affinities(); n != 2 {
		t.Errorf("two clients, three connections: %v affinities, want 2", n)
	}
	for _, e := range []*tables.Entry{e1, e2, e3} {
		f.CRT.Release(e)
	}
	if n := affinities(); n != 2 {
		t.Errorf("connections closed, affinities in force for their ttl: %v, want 2", n)
	}
	f.CRT.SweepAffinity(time.Now().Add(2 * ttl))
	if n := affinities(); n != 0 {
		t.Errorf("after the sweep past their expiry: %v affinities, want 0", n)
	}
}
