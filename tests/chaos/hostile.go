//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	vocab "github.com/caddy-vipa/caddy-vipa/vipa"

	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// otherVIPA is a second VIPA of the hostile scenarios whose only candidate
// target is caddy-b, by name.
const otherVIPA = "127.0.0.101"

// hostileFleet is a routing node with two definitions (the VIPA for every
// node, otherVIPA for caddy-b only), caddy-b serving the VIPA, and a
// member of the fleet's key under the scenario's control.
type hostileFleet struct {
	*fleet
	otherPort int
	gossip    int
}

func (e *env) hostileFleet(ctx context.Context) (*hostileFleet, func(), error) {
	other, err := e.pp.Pick("127.0.0.1", otherVIPA)
	if err != nil {
		return nil, nil, err
	}
	f, err := e.fleet(ctx, fleetConf{targets: 1, defs: fmt.Sprintf("\t\tvipadistribute define %s port %d destip caddy-b\n", otherVIPA, other)})
	if err != nil {
		return nil, nil, err
	}
	b := f.targets[0]
	app, err := listenApp(f.appAddr(b), b.name)
	if err != nil {
		return nil, nil, err
	}
	if err := f.waitRows(ctx, 10*time.Second); err != nil {
		app.close()
		return nil, nil, err
	}
	return &hostileFleet{fleet: f, otherPort: other, gossip: f.a.gossip}, app.close, nil
}

// member starts a serf agent holding the fleet key on 127.0.0.4 that
// joins the routing node.
func (h *hostileFleet) member(e *env, name string, advertise string) (*serfsync.Agent, error) {
	key, err := base64.StdEncoding.DecodeString(e.key)
	if err != nil {
		return nil, err
	}
	port, err := e.pp.Pick("127.0.0.4")
	if err != nil {
		return nil, err
	}
	ag, err := serfsync.New(serfsync.Config{
		NodeName:  name,
		BindAddr:  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.4"), uint16(port)),
		Advertise: netip.MustParseAddr(advertise),
		Join:      []string{fmt.Sprintf("127.0.0.1:%d", h.gossip)},
		Keys:      [][]byte{key},
		Label:     stateChannelLabel,
		Logger:    zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	if err := ag.Start(); err != nil {
		return nil, err
	}
	return ag, nil
}

// dropped sums caddy_vipa_dropped_peer_data_total by reason.
func dropped(n *node) (map[string]float64, error) {
	m, err := n.metrics()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, `caddy_vipa_dropped_peer_data_total{reason="`); ok {
			out[strings.TrimSuffix(rest, `"}`)] += v
		}
	}
	return out, nil
}

// seriesDeltas lists the series of the named metrics that grew.
func seriesDeltas(before, after map[string]float64, names ...string) string {
	var parts []string
	for k, v := range after {
		for _, name := range names {
			if (k == name || strings.HasPrefix(k, name+"{")) && v > before[k] {
				parts = append(parts, fmt.Sprintf("%s +%.0f", k, v-before[k]))
			}
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func deltas(before, after map[string]float64) (string, float64) {
	var parts []string
	total := 0.0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s +%.0f", k, d))
			total += d
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none", 0
	}
	return strings.Join(parts, ", "), total
}

// servedBy runs k short connections through addr and counts those the
// named node's app served.
func servedBy(addr, name string, k int) (int, error) {
	got := 0
	var firstErr error
	for range k {
		n, err := short(addr, 3*time.Second)
		if err != nil {
			firstErr = err
			continue
		}
		if n == name {
			got++
		}
	}
	return got, firstErr
}

// hostileReports runs two members holding the fleet key. One, on its own
// address, reports listeners on a port outside the VIPA's definition, on
// a VIPA whose only candidate is caddy-b, and on a VIPA nobody defines.
// The other claims caddy-b's advertise address as its own and reports the
// VIPA's port there. Every forged line must be dropped and counted in
// caddy_vipa_dropped_peer_data_total, and neither member may get a DPT
// row; caddy-b's connections are shown (a fleet may stop trusting an
// address two members claim).
func hostileReports(ctx context.Context, e *env, r *result) error {
	h, closeApp, err := e.hostileFleet(ctx)
	if err != nil {
		return err
	}
	defer closeApp()
	b := h.targets[0]
	before, err := dropped(h.a)
	if err != nil {
		return err
	}
	v, o := netip.MustParseAddr(vipa), netip.MustParseAddr(otherVIPA)
	x, err := h.member(e, "caddy-x", "127.0.0.4")
	if err != nil {
		return err
	}
	defer x.Stop()
	x.SetReport([]vocab.Listener{
		{VIPA: v, Port: uint16(h.port) + 1, Ready: 1},                 // a port outside the definition
		{VIPA: o, Port: uint16(h.otherPort), Ready: 1},                // a VIPA for caddy-b only
		{VIPA: netip.MustParseAddr("127.0.0.99"), Port: 80, Ready: 1}, // a VIPA nobody defines
	})
	y, err := h.member(e, "caddy-y", b.ip)
	if err != nil {
		return err
	}
	defer y.Stop()
	y.SetReport([]vocab.Listener{{VIPA: v, Port: uint16(h.port), Ready: 8}}) // caddy-b's address and port
	const forged = 4
	if err := h.waitMembers(ctx, h.a, 4, 15*time.Second); err != nil {
		return err
	}
	// The routing node syncs with every member within a reconcile period
	// (3 s on lan): wait that long and a margin for every line to count.
	var total float64
	var summary string
	_, _ = harness.Poll(ctx, 8*time.Second, 100*time.Millisecond, "forged lines counted", func() (bool, string, error) {
		after, err := dropped(h.a)
		if err != nil {
			return false, "", err
		}
		summary, total = deltas(before, after)
		return total >= forged, summary, nil
	})
	time.Sleep(500 * time.Millisecond)
	rows, err := h.a.dpt()
	if err != nil {
		return err
	}
	var taken []string
	for _, row := range rows {
		if row.Node == "caddy-x" || row.Node == "caddy-y" {
			taken = append(taken, fmt.Sprintf("%s %s:%d→%s", row.Node, row.VIPA, row.Port, row.Address))
		}
	}
	r.figure("%d forged report lines; dropped and counted: %s; DPT rows of the hostile members: %d", forged, summary, len(taken))
	r.check(len(taken) == 0, "the routing node took forged rows: %v", taken)
	r.check(total >= forged, "%.0f of %d forged lines counted as dropped (%s)", total, forged, summary)
	got, ferr := servedBy(h.addr, b.name, 20)
	note := ""
	if ferr != nil {
		note = fmt.Sprintf(" (the last error: %v)", ferr)
	}
	r.figure("caddy-b's row kept: %v; %d of 20 connections served by %s beside the hostile members%s", hasRow(rows, h.port, b.name), got, b.name, note)
	return nil
}

// hostileDefinition runs a member holding the fleet key, with a node name
// that sorts before the routing node's, that defines the VIPA for itself.
// The VIPA's established routing node must keep it: the newcomer's
// definition is flagged as a conflict, and connections go on as before.
func hostileDefinition(ctx context.Context, e *env, r *result) error {
	h, closeApp, err := e.hostileFleet(ctx)
	if err != nil {
		return err
	}
	defer closeApp()
	b := h.targets[0]
	ag, err := h.member(e, "caddy-0", "127.0.0.4")
	if err != nil {
		return err
	}
	defer ag.Stop()
	ps, _ := vocab.ParsePorts([]string{fmt.Sprint(h.port)})
	ag.SetDefinitions([]*vocab.Definition{{VIPA: netip.MustParseAddr(vipa), Ports: ps, DestIP: []string{vocab.DestAll}, Distmethod: vocab.RoundRobin}})
	if err := h.waitMembers(ctx, h.a, 3, 15*time.Second); err != nil {
		return err
	}
	var defs string
	_, err = harness.Poll(ctx, 8*time.Second, 100*time.Millisecond, "the forged definition to reach the routing node", func() (bool, string, error) {
		rows, err := h.a.definitions()
		defs = fmt.Sprintf("%+v", rows)
		return err == nil && strings.Contains(defs, "caddy-0"), defs, err
	})
	if err != nil {
		r.figure("the forged definition never showed on the routing node: %s", defs)
	}
	owner := ""
	rows, err := h.a.definitions()
	if err != nil {
		return err
	}
	for _, d := range rows {
		if d.VIPA == vipa && d.Conflict == "" {
			owner = d.RoutingNode
		}
	}
	r.figure("definitions on caddy-a: %s", defs)
	time.Sleep(time.Second)
	got, ferr := servedBy(h.addr, b.name, 20)
	r.figure("%d of 20 connections served by %s after the forged definition", got, b.name)
	r.check(got == 20, "%d of 20 connections served by %s after the forged definition (first error: %v)", got, b.name, ferr)
	r.check(owner != "caddy-0", "the hostile member took the VIPA: %s", defs)
	return nil
}
