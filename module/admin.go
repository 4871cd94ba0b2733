package module

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the routing tables, definitions and members under /vipa/
// on Caddy's admin endpoint.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.vipa",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/vipa/dpt", Handler: get(dptRows)},
		{Pattern: "/vipa/crt", Handler: get(crtRows)},
		{Pattern: "/vipa/definitions", Handler: get(definitionRows)},
		{Pattern: "/vipa/members", Handler: get(memberRows)},
		{Pattern: "/vipa/affinity", Handler: get(affinityRows)},
		{Pattern: "/vipa/quiesce", Handler: quiesceHandler(true)},
		{Pattern: "/vipa/resume", Handler: quiesceHandler(false)},
		{Pattern: "/vipa/route", Handler: caddy.AdminHandlerFunc(whatIf)},
		{Pattern: "/vipa/vipadyn", Handler: get(vipadynRows)},
		{Pattern: "/vipa/move", Handler: caddy.AdminHandlerFunc(handleMove)},
	}
}

// dptRow is one DPT row in /vipa/dpt.
type dptRow struct {
	VIPA        string `json:"vipa"`
	Port        uint16 `json:"port"`
	Node        string `json:"node"`
	Address     string `json:"address"`
	Ready       int    `json:"ready"`
	Weight      int    `json:"weight"`
	State       string `json:"state"`
	ActiveConns int64  `json:"active_conns"`
	TotalConns  uint64 `json:"total_conns"`
	// TSR, health and effective weight as the routing node scores the row.
	TSR             int     `json:"tsr"`
	Health          string  `json:"health"`
	EffectiveWeight float64 `json:"effective_weight"`
}

// affinityRow is one client's timed affinity in /vipa/affinity.
type affinityRow struct {
	Client      string `json:"client"`
	VIPA        string `json:"vipa"`
	Port        uint16 `json:"port"`
	Node        string `json:"node"`
	ActiveConns int    `json:"active_conns"`
	Expires     string `json:"expires"` // RFC 3339; empty while connections are open
}

// crtRow is one live routed connection in /vipa/crt.
type crtRow struct {
	Client        string `json:"client"`
	VIPA          string `json:"vipa"`
	Port          uint16 `json:"port"`
	Node          string `json:"node"`
	Address       string `json:"address"`
	Since         string `json:"since"`
	BytesToTarget int64  `json:"bytes_to_target"`
	BytesToClient int64  `json:"bytes_to_client"`
	Reason        string `json:"reason"` // why it went to its target
}

// definitionRow is one VIPADISTRIBUTE definition in /vipa/definitions.
type definitionRow struct {
	VIPA        string   `json:"vipa"`
	Ports       []int    `json:"ports"` // empty with port all
	AllPorts    bool     `json:"all_ports,omitempty"`
	Exclude     []int    `json:"exclude,omitempty"` // port all's excluded ports
	DestIP      []string `json:"destip"`
	Distmethod  string   `json:"distmethod"`
	RoutingNode string   `json:"routing_node"`
	Conflict    string   `json:"conflict"`
}

// memberRow is one serf member in /vipa/members.
type memberRow struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Status  string `json:"status"`
}

// get wraps a row producer as a GET-only JSON endpoint. Without a running
// vipadynamic app every table is empty.
func get[T any](rows func(*fleet.Fleet, *http.Request) ([]T, error)) caddy.AdminHandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
		}
		out := []T{}
		if app := currentApp(); app != nil {
			got, err := rows(app.fleet, r)
			if err != nil {
				return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
			}
			if got != nil {
				out = got
			}
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(out)
	}
}

// dptRows lists, per VIPA, the DPT where this node routes it and this
// node's own report where it is only a target; the query filters them as
// /vipa/crt's does.
func dptRows(f *fleet.Fleet, r *http.Request) ([]dptRow, error) {
	q, err := parseCRTFilter(r)
	if err != nil {
		return nil, err
	}
	var out []dptRow
	for _, row := range f.DPTView() {
		if q.matchRow(row.VIPA, row.Port, row.Node) {
			out = append(out, dptRowOf(row))
			if len(out) == q.limit {
				break
			}
		}
	}
	return out, nil
}

func dptRowOf(r tables.Row) dptRow {
	return dptRow{
		VIPA:        r.VIPA.String(),
		Port:        r.Port,
		Node:        r.Node,
		Address:     r.Address.String(),
		Ready:       r.Ready,
		Weight:      r.Weight,
		State:       r.State.String(),
		ActiveConns: r.ActiveConns,
		TotalConns:  r.TotalConns,

		TSR:             r.TSR,
		Health:          r.Health.String(),
		EffectiveWeight: r.EffectiveWeight,
	}
}

// affinityRows lists the client affinities in force on a routing node;
// the query filters them as /vipa/crt's does, and by client IP.
func affinityRows(f *fleet.Fleet, req *http.Request) ([]affinityRow, error) {
	q, err := parseCRTFilter(req)
	if err != nil {
		return nil, err
	}
	var client netip.Addr
	if v := req.URL.Query().Get("client"); v != "" {
		if client, err = netip.ParseAddr(v); err != nil {
			return nil, fmt.Errorf("client %q: want an IP address", v)
		}
		client = client.Unmap()
	}
	var out []affinityRow
	for _, a := range f.CRT.Affinities(time.Now()) {
		if !q.matchRow(a.VIPA, a.Port, a.Node) || client.IsValid() && a.Client != client {
			continue
		}
		r := affinityRow{Client: a.Client.String(), VIPA: a.VIPA.String(), Port: a.Port, Node: a.Node, ActiveConns: a.ActiveConns}
		if !a.Expires.IsZero() {
			r.Expires = a.Expires.UTC().Format(time.RFC3339)
		}
		if out = append(out, r); len(out) == q.limit {
			break
		}
	}
	return out, nil
}

// crtFilter holds the /vipa/crt query: vipa, port, node, limit; /vipa/dpt
// and /vipa/affinity take it too.
type crtFilter struct {
	vipa  netip.Addr
	port  uint16
	node  string
	limit int
}

func parseCRTFilter(r *http.Request) (crtFilter, error) {
	var f crtFilter
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return f, fmt.Errorf("query: %w", err)
	}
	if v := q.Get("vipa"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return f, fmt.Errorf("vipa %q: %w", v, err)
		}
		f.vipa = a.Unmap()
	}
	if v := q.Get("port"); v != "" {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return f, fmt.Errorf("port %q: want 0-65535", v)
		}
		f.port = uint16(p)
	}
	f.node = q.Get("node")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, fmt.Errorf("limit %q: want a number ≥ 0", v)
		}
		f.limit = n
	}
	return f, nil
}

func (f crtFilter) match(e *tables.Entry) bool { return f.matchRow(e.VIPA, e.Port, e.Target.Node) }

// matchRow applies the filter to a row of any table with these columns.
func (f crtFilter) matchRow(vipa netip.Addr, port uint16, node string) bool {
	return (!f.vipa.IsValid() || vipa == f.vipa) &&
		(f.port == 0 || port == f.port) &&
		(f.node == "" || node == f.node)
}

func crtRows(fl *fleet.Fleet, r *http.Request) ([]crtRow, error) {
	f, err := parseCRTFilter(r)
	if err != nil {
		return nil, err
	}
	var out []crtRow
	fl.CRT.Range(func(e *tables.Entry) bool {
		if !f.match(e) {
			return true
		}
		out = append(out, crtRow{
			Client:        e.Client.String(),
			VIPA:          e.VIPA.String(),
			Port:          e.Port,
			Node:          e.Target.Node,
			Address:       e.Target.Address.String(),
			Since:         time.Unix(0, e.Since).UTC().Format(time.RFC3339),
			BytesToTarget: e.ToTarget.Load(),
			BytesToClient: e.ToClient.Load(),
			Reason:        fl.CRT.Explain(e),
		})
		return f.limit == 0 || len(out) < f.limit
	})
	return out, nil
}

func definitionRows(f *fleet.Fleet, _ *http.Request) ([]definitionRow, error) {
	var out []definitionRow
	for _, k := range f.Definitions() {
		out = append(out, definitionRowOf(&k.Definition, k.Conflict))
	}
	return out, nil
}

func definitionRowOf(d *vipa.Definition, conflict string) definitionRow {
	r := definitionRow{
		VIPA:        d.VIPA.String(),
		Ports:       d.Ports.Ports(),
		DestIP:      d.DestIP,
		Distmethod:  d.Distmethod,
		RoutingNode: d.RoutingNode,
		Conflict:    conflict,
	}
	if d.All {
		r.Ports, r.AllPorts, r.Exclude = []int{}, true, d.Ports.Excluded().Ports()
	}
	return r
}

func memberRows(f *fleet.Fleet, _ *http.Request) ([]memberRow, error) {
	var out []memberRow
	for _, m := range f.Members() {
		out = append(out, memberRow{Name: m.Name, Address: m.Address.String(), Status: m.Status})
	}
	return out, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = adminAPI{}
)
