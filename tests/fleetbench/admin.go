//go:build linux

package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// adminClient reads the /vipa/ routes; keep-alive connections make a poll
// cost well under a millisecond on loopback.
var adminClient = &http.Client{
	Timeout:   time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true},
}

type (
	dptRow        = harness.DPTRow
	memberRow     = harness.MemberRow
	definitionRow = harness.DefinitionRow
)

func getJSON(admin, path string, v any) error {
	return harness.GetJSON(adminClient, admin, path, v)
}

func dpt(admin string) ([]dptRow, error) {
	var rows []dptRow
	err := getJSON(admin, "/vipa/dpt", &rows)
	return rows, err
}

// members maps each serf member name to its status in admin's view.
func members(admin string) (map[string]string, error) {
	var rows []memberRow
	if err := getJSON(admin, "/vipa/members", &rows); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Name] = r.Status
	}
	return out, nil
}

// rowOf returns the row of node in a DPT, if any.
func rowOf(rows []dptRow, node string) (dptRow, bool) {
	for _, r := range rows {
		if r.Node == node {
			return r, true
		}
	}
	return dptRow{}, false
}

func dptString(rows []dptRow) string {
	b, _ := json.Marshal(rows)
	return string(b)
}
