package vipacmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// requestTimeout bounds one admin request: a table is a snapshot, not a
// stream.
const requestTimeout = 10 * time.Second

func defaultAdmin() string { return caddy.DefaultAdminListen }

// adminRequest sends one request to the admin endpoint at admin (host:port,
// unix/path, as in Caddy's admin config) and returns the body of a 2xx
// response. Other outcomes are errors fit for one line.
func adminRequest(admin, method, uri string, body io.Reader) ([]byte, error) {
	addr, err := caddy.ParseNetworkAddress(admin)
	if err != nil || addr.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %q", admin)
	}
	origin := "http://" + addr.JoinHostPort(0)
	if addr.IsUnixNetwork() || addr.IsFdNetwork() {
		// Caddy requires a loopback Host on a socket without one.
		origin = "http://127.0.0.1"
		addr.Host, _, _ = strings.Cut(addr.Host, "|") // drop socket permission bits
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, origin+uri, body)
	if err != nil {
		return nil, err
	}
	if !addr.IsUnixNetwork() && !addr.IsFdNetwork() {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, addr.Network, addr.JoinHostPort(0))
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("admin endpoint %s unreachable: %v", admin, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("admin endpoint %s: reading %s: %v", admin, uri, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && !isAPIError(raw):
		return nil, fmt.Errorf("admin endpoint %s has no route %s: does that Caddy include caddy-vipa?", admin, req.URL.Path)
	case resp.StatusCode >= 300:
		return nil, fmt.Errorf("admin endpoint %s: %s %s: %s: %s", admin, method, uri, resp.Status, apiError(raw))
	}
	return raw, nil
}

// isAPIError reports whether body is a route's JSON error, not the admin
// endpoint's answer for a path it does not serve.
func isAPIError(body []byte) bool {
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error != ""
}

// apiError is the message of Caddy's JSON error body, else the body.
func apiError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}
