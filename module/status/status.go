// Package status serves a live status page of the fleet, the VIPAs and
// their routing tables: the HTTP handler http.handlers.vipa_status.
package status

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the status page at any path it is mounted on. The page
// holds everything it needs; it follows the node's tables through a stream
// of server-sent events (the same URL with ?events), and ?snapshot answers
// one update as JSON. It reads only what the /vipa/ admin routes serve and
// changes nothing.
type Handler struct {
	// How often the page is sent the tables when they changed. Default: 500ms.
	Interval caddy.Duration `json:"interval,omitempty"`

	// How many of the busiest live connections (by bytes copied) the page
	// shows. Default: 20.
	BusiestConns int `json:"busiest_conns,omitempty"`

	ctx    caddy.Context
	logger *zap.Logger
	source *source
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.vipa_status",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the defaults and finds the admin routes to read.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	if h.Interval == 0 {
		h.Interval = caddy.Duration(500 * time.Millisecond)
	}
	if h.BusiestConns == 0 {
		h.BusiestConns = 20
	}
	src, err := newSource()
	if err != nil {
		return err
	}
	h.source = src
	return nil
}

// Validate checks the settings.
func (h *Handler) Validate() error {
	if h.Interval < caddy.Duration(50*time.Millisecond) {
		return fmt.Errorf("interval %s: want at least 50ms", time.Duration(h.Interval))
	}
	if h.BusiestConns < 0 {
		return fmt.Errorf("busiest_conns %d: want 0 or more", h.BusiestConns)
	}
	return nil
}

// ServeHTTP serves the page, its event stream or one snapshot.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
	q := r.URL.Query()
	switch {
	case q.Has("events"):
		return h.stream(w, r)
	case q.Has("snapshot"):
		b, err := h.snapshot()
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, err = w.Write(b)
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", page.csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(page.html))
	return nil
}

func (h *Handler) snapshot() ([]byte, error) {
	return h.source.snapshot(h.BusiestConns)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
