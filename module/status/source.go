package status

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// source reads the tables through the handlers of the /vipa/ admin routes,
// in process: the page shows what the admin API shows, no more.
type source struct {
	routes map[string]caddy.AdminHandler
}

// readRoutes are the GET routes the page shows, by the snapshot field they
// fill. Routes the node does not serve are left out.
var readRoutes = map[string]string{
	"members":     "/vipa/members",
	"definitions": "/vipa/definitions",
	"dpt":         "/vipa/dpt",
	"crt":         "/vipa/crt",
	"vipadyn":     "/vipa/vipadyn",
	"affinity":    "/vipa/affinity",
}

func newSource() (*source, error) {
	info, err := caddy.GetModule("admin.api.vipa")
	if err != nil {
		return nil, fmt.Errorf("the status page reads the vipa admin routes: %w", err)
	}
	router, ok := info.New().(caddy.AdminRouter)
	if !ok {
		return nil, fmt.Errorf("module admin.api.vipa serves no admin routes")
	}
	s := &source{routes: map[string]caddy.AdminHandler{}}
	for _, rt := range router.Routes() {
		s.routes[rt.Pattern] = rt.Handler
	}
	return s, nil
}

// get answers GET path as its admin route would.
func (s *source) get(path string) (json.RawMessage, error) {
	h, ok := s.routes[path]
	if !ok {
		return nil, nil
	}
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	if err := h.ServeHTTP(w, req); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if w.status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", path, w.status)
	}
	return bytes.TrimSpace(w.body.Bytes()), nil
}

// snapshot is one update of the page: every read route's rows, with the CRT
// cut to its busiest entries and counted.
func (s *source) snapshot(busiest int) ([]byte, error) {
	out := map[string]any{}
	for field, path := range readRoutes {
		raw, err := s.get(path)
		if err != nil {
			return nil, err
		}
		if raw == nil {
			continue
		}
		if field == "crt" {
			top, total, err := busiestConns(raw, busiest)
			if err != nil {
				return nil, err
			}
			out["crt"] = top
			out["crt_total"] = total
			continue
		}
		out[field] = raw
	}
	return json.Marshal(out)
}

// busiestConns keeps the n CRT rows that copied the most bytes, each row as
// the route wrote it.
func busiestConns(raw json.RawMessage, n int) ([]json.RawMessage, int, error) {
	var rows []json.RawMessage
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, 0, fmt.Errorf("crt rows: %w", err)
	}
	type ranked struct {
		bytes int64
		since string
		row   json.RawMessage
	}
	all := make([]ranked, 0, len(rows))
	for _, r := range rows {
		var c struct {
			ToTarget int64  `json:"bytes_to_target"`
			ToClient int64  `json:"bytes_to_client"`
			Since    string `json:"since"`
		}
		if err := json.Unmarshal(r, &c); err != nil {
			return nil, 0, fmt.Errorf("crt row: %w", err)
		}
		all = append(all, ranked{c.ToTarget + c.ToClient, c.Since, r})
	}
	slices.SortStableFunc(all, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.bytes, a.bytes), strings.Compare(a.since, b.since))
	})
	top := make([]json.RawMessage, 0, min(n, len(all)))
	for _, r := range all[:min(n, len(all))] {
		top = append(top, r.row)
	}
	return top, len(rows), nil
}

// recorder collects one admin route's answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }
