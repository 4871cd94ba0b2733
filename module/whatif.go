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
)

// routeAnswer is GET /vipa/route's answer: the target a new connection from
// the client would get now, and why.
type routeAnswer struct {
	VIPA       string           `json:"vipa"`
	Port       uint16           `json:"port"`
	Client     string           `json:"client"`
	Node       string           `json:"node"`    // empty when no target would take it
	Address    string           `json:"address"` // empty when no target would take it
	Method     string           `json:"method"`
	Reason     string           `json:"reason"`
	Affinity   string           `json:"affinity"` // the node of the client's timed affinity in force, or ""
	Candidates []routeCandidate `json:"candidates"`
}

// routeCandidate is one DPT row of the answer.
type routeCandidate struct {
	dptRow
	Eligible bool   `json:"eligible"`
	WhyNot   string `json:"why_not"`
}

// whatIf serves GET /vipa/route?vipa=&port=&client=IP[:port]. It changes
// no state: no rotation step, no affinity.
func whatIf(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	q, err := parseRouteQuery(r)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	app := currentApp()
	if app == nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("no vipadynamic app is running")}
	}
	ans, err := answerRoute(app.fleet, q, time.Now())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(ans)
}

// routeQuery is what /vipa/route asks about.
type routeQuery struct {
	vipa   netip.Addr
	port   uint16
	client netip.AddrPort // port 0 when the query gave none
}

func parseRouteQuery(r *http.Request) (routeQuery, error) {
	var q routeQuery
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, fmt.Errorf("query: %w", err)
	}
	s := v.Get("vipa")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return q, fmt.Errorf("vipa %q: want an IP address", s)
	}
	q.vipa = a.Unmap()
	s = v.Get("port")
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return q, fmt.Errorf("port %q: want 1-65535", s)
	}
	q.port = uint16(p)
	s = v.Get("client")
	if ap, err := netip.ParseAddrPort(s); err == nil {
		q.client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	} else if a, err := netip.ParseAddr(s); err == nil {
		q.client = netip.AddrPortFrom(a.Unmap(), 0)
	} else {
		return q, fmt.Errorf("client %q: want IP or IP:port", s)
	}
	return q, nil
}

// answerRoute asks the DPT group of the query what a new connection would
// get: the handler's choice, made with Peek. A node that defines or backs up
// the VIPA answers from the DPT it holds, as its handler routes what reaches
// its listener, whoever routes the VIPA now.
func answerRoute(f *fleet.Fleet, q routeQuery, now time.Time) (routeAnswer, error) {
	ans := routeAnswer{VIPA: q.vipa.String(), Port: q.port, Client: q.client.Addr().String(), Candidates: []routeCandidate{}}
	if q.client.Port() != 0 {
		ans.Client = q.client.String()
	}
	if f.Route(q.vipa) == nil && !f.StandsBy(q.vipa) {
		for _, k := range f.Definitions() {
			if k.Owner && k.VIPA == q.vipa {
				return ans, fmt.Errorf("this node neither defines nor backs up VIPA %s: ask its routing node, %s", q.vipa, k.RoutingNode)
			}
		}
		return ans, fmt.Errorf("no VIPADISTRIBUTE definition for VIPA %s", q.vipa)
	}
	g := f.DPT.Lookup(q.vipa, q.port)
	ans.Method = g.Distmethod()
	a := g.WhatIf(f.CRT, q.client.Addr(), netip.AddrPortFrom(q.vipa, q.port), now)
	ans.Affinity = a.Affinity
	for _, c := range a.Candidates {
		ans.Candidates = append(ans.Candidates, routeCandidate{dptRow: dptRowOf(c.Row), Eligible: c.Eligible, WhyNot: c.WhyNot})
	}
	switch {
	case a.Target != nil:
		ans.Node, ans.Address, ans.Reason = a.Target.Node, a.Target.Address.String(), a.Why.Text("")
	case len(a.Candidates) == 0:
		ans.Reason = "refused: no target has an application listening on this port"
	default:
		ans.Reason = "refused: no target can take it (quiesced, at max_conns or this listener itself)"
	}
	return ans, nil
}
