//go:build linux

package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// The rows of the /vipa/ admin routes, as SPEC.md names their fields. They
// are the tests' own, so a renamed field in the plugin fails a test.

// DPTRow is one row of GET /vipa/dpt.
type DPTRow struct {
	VIPA        string `json:"vipa"`
	Port        int    `json:"port"`
	Node        string `json:"node"`
	Address     string `json:"address"`
	Ready       int    `json:"ready"`
	Weight      int    `json:"weight"`
	State       string `json:"state"`
	ActiveConns int    `json:"active_conns"`
	TotalConns  int    `json:"total_conns"`
	TSR         int    `json:"tsr"`
	Health      string `json:"health"`
}

// CRTRow is one row of GET /vipa/crt.
type CRTRow struct {
	Client        string `json:"client"`
	VIPA          string `json:"vipa"`
	Port          int    `json:"port"`
	Node          string `json:"node"`
	Address       string `json:"address"`
	Since         string `json:"since"`
	BytesToTarget int64  `json:"bytes_to_target"`
	BytesToClient int64  `json:"bytes_to_client"`
	Reason        string `json:"reason"`
}

// DefinitionRow is one row of GET /vipa/definitions.
type DefinitionRow struct {
	VIPA        string   `json:"vipa"`
	Ports       []int    `json:"ports"`
	DestIP      []string `json:"destip"`
	Distmethod  string   `json:"distmethod"`
	RoutingNode string   `json:"routing_node"`
	Conflict    string   `json:"conflict"`
}

// MemberRow is one row of GET /vipa/members.
type MemberRow struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Status  string `json:"status"`
}

// GetJSON fetches path from a Caddy admin endpoint into v. A status other
// than 200 or a body that does not decode is an error quoting the body.
func GetJSON(c *http.Client, admin, path string, v any) error {
	body, err := Get(c, admin, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w: %s", path, err, body)
	}
	return nil
}

// Get fetches path from a Caddy admin endpoint; a status other than 200 is
// an error quoting the body.
func Get(c *http.Client, admin, path string) ([]byte, error) {
	resp, err := c.Get("http://" + admin + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return body, nil
}
