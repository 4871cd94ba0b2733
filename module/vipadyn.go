package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/vipadyn"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// vipadynRow is one VIPA in GET /vipa/vipadyn: what this node is for it.
type vipadynRow struct {
	VIPA   string `json:"vipa"`
	Status string `json:"status"` // active, backup, moving, quiescing, none
	Rank   int    `json:"rank"`   // 0 for the configured routing node
	Owner  string `json:"owner"`  // the node that routes it; empty while none does
	Since  string `json:"since"`  // RFC 3339: when this row last changed
}

func vipadynRows(f *fleet.Fleet, _ *http.Request) ([]vipadynRow, error) {
	var out []vipadynRow
	for _, r := range f.VIPADyn() {
		out = append(out, vipadynRow{
			VIPA: r.VIPA.String(), Status: string(r.Status), Rank: r.Rank, Owner: r.Owner,
			Since: r.Since.UTC().Format(time.RFC3339),
		})
	}
	return out, nil
}

// moveRequest is the body of POST /vipa/move.
type moveRequest struct {
	VIPA string `json:"vipa"`
	To   string `json:"to"`
	When string `json:"when"` // now (default) or idle
}

// moveUsage is the body POST /vipa/move wants, for its errors.
const moveUsage = `want {"vipa": "<address>", "to": "<node>", "when": "now"|"idle"}, when optional`

// parseMove reads a move body: the VIPA, the node to move it to, and
// whether to wait until it is idle.
func parseMove(r io.Reader) (v netip.Addr, to string, whenIdle bool, err error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxQuiesceBody+1))
	if err != nil {
		return v, "", false, fmt.Errorf("reading the body: %w", err)
	}
	if len(raw) > maxQuiesceBody {
		return v, "", false, fmt.Errorf("body larger than %d bytes", maxQuiesceBody)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return v, "", false, errors.New("empty body; " + moveUsage)
	}
	var req moveRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return v, "", false, fmt.Errorf("body: %v; %s", err, moveUsage)
	}
	if dec.More() {
		return v, "", false, errors.New("body: more than one JSON value")
	}
	if req.VIPA == "" {
		return v, "", false, errors.New("missing vipa; " + moveUsage)
	}
	if v, err = vipa.ParseVIPA(req.VIPA); err != nil {
		return v, "", false, fmt.Errorf("vipa: %v", err)
	}
	if req.To == "" {
		return v, "", false, errors.New("missing to; " + moveUsage)
	}
	if err := vipa.ValidateNodeName(req.To); err != nil {
		return v, "", false, fmt.Errorf("to: %v", err)
	}
	switch req.When {
	case "", "now":
	case "idle":
		whenIdle = true
	default:
		return v, "", false, fmt.Errorf("when %q: want now or idle", req.When)
	}
	return v, req.To, whenIdle, nil
}

// handleMove hands a VIPA this node routes to another node: now (its
// connections through the VIPA break) or once it routes none on it. A
// VIPA this node does not know is 404; one it knows but does not route,
// or a node that cannot take it, 409.
func handleMove(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	v, to, whenIdle, err := parseMove(r.Body)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("move: %w", err)}
	}
	app := currentApp()
	if app == nil {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: errors.New("move: the vipadynamic app is not running")}
	}
	if !slices.ContainsFunc(app.fleet.VIPADyn(), func(row vipadyn.Row) bool { return row.VIPA == v }) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("move: VIPA %s is not known to this node (GET /vipa/vipadyn lists those it knows)", v)}
	}
	if err := app.fleet.Move(v, to, whenIdle); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("move: %w", err)}
	}
	rows, _ := vipadynRows(app.fleet, r)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(rows)
}

var (
	ownershipDesc = prometheus.NewDesc(metricsPrefix+"ownership_changes_total",
		"Changes of a VIPA's owner or of this node's status for it (GET /vipa/vipadyn), as seen here.", nil, nil)
	confirmDesc = prometheus.NewDesc(metricsPrefix+"owner_confirmations_total",
		"Confirmations through the fleet of a VIPA owner silent to this backup's direct pings, by outcome (refuted, inconclusive, down).", []string{"outcome"}, nil)
	vipadynDesc = prometheus.NewDesc(metricsPrefix+"vipadyn_status",
		"1 for this node's status for each VIPA it knows (active, backup, moving, quiescing, none).", []string{"vipa", "status"}, nil)
)

// vipadynCollector reads the ownership state at scrape time.
type vipadynCollector struct{ f *fleet.Fleet }

func (c vipadynCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ownershipDesc
	ch <- confirmDesc
	ch <- vipadynDesc
}

func (c vipadynCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(ownershipDesc, prometheus.CounterValue, float64(c.f.OwnershipChanges()))
	for o, n := range c.f.OwnerConfirmations() {
		ch <- prometheus.MustNewConstMetric(confirmDesc, prometheus.CounterValue, float64(n), o.String())
	}
	for _, r := range c.f.VIPADyn() {
		ch <- prometheus.MustNewConstMetric(vipadynDesc, prometheus.GaugeValue, 1, r.VIPA.String(), string(r.Status))
	}
}
