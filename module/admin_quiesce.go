package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// quiesceBody is the body of POST /vipa/quiesce and /vipa/resume; every
// field is optional.
type quiesceBody struct {
	VIPA string `json:"vipa"`
	Port *int   `json:"port"`
	Node string `json:"node"`
}

// maxQuiesceBody bounds the request body.
const maxQuiesceBody = 4096

// parseQuiesce reads a quiesce or resume body; an empty body selects all.
func parseQuiesce(r io.Reader) (fleet.Selector, error) {
	var sel fleet.Selector
	raw, err := io.ReadAll(io.LimitReader(r, maxQuiesceBody+1))
	if err != nil {
		return sel, fmt.Errorf("reading the body: %w", err)
	}
	if len(raw) > maxQuiesceBody {
		return sel, fmt.Errorf("body larger than %d bytes", maxQuiesceBody)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return sel, nil
	}
	var b quiesceBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return sel, fmt.Errorf(`body: %v; want {"vipa": "<address>", "port": <1-65535>, "node": "<name>"}, every field optional`, err)
	}
	if dec.More() {
		return sel, errors.New("body: more than one JSON value")
	}
	if b.VIPA != "" {
		v, err := vipa.ParseVIPA(b.VIPA)
		if err != nil {
			return sel, fmt.Errorf("vipa: %v", err)
		}
		sel.VIPA = v
	}
	if b.Port != nil {
		if *b.Port < 1 || *b.Port > 65535 {
			return sel, fmt.Errorf("port %d: want 1-65535", *b.Port)
		}
		sel.Port = uint16(*b.Port)
	}
	if b.Node != "" {
		if err := vipa.ValidateNodeName(b.Node); err != nil {
			return sel, fmt.Errorf("node: %v", err)
		}
		sel.Node = b.Node
	}
	return sel, nil
}

// quiesceHandler serves POST /vipa/quiesce (quiesced true) and
// /vipa/resume: the response is the rows selected, as /vipa/dpt shows
// them. A VIPA, port or node this node does not know in that role is 404.
func quiesceHandler(quiesced bool) caddy.AdminHandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodPost {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
		}
		sel, err := parseQuiesce(r.Body)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
		app := currentApp()
		if app == nil {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no vipadynamic app is running")}
		}
		rows, err := app.fleet.Quiesce(sel, quiesced)
		switch {
		case errors.Is(err, fleet.ErrNotFound):
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
		case err != nil:
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
		out := make([]dptRow, 0, len(rows))
		for _, row := range rows {
			out = append(out, dptRowOf(row))
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(out)
	}
}
