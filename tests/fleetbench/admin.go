//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
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

// poll calls cond every interval until it holds, and returns when it did.
// Errors from cond are retried: a node may be restarting. The last error or
// a description of the last state goes into the timeout error.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, string, error)) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state, err := cond()
		now := time.Now()
		if err == nil && ok {
			return now, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = state
		}
		if now.After(deadline) {
			return now, fmt.Errorf("%s: not after %s (last: %s)", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-time.After(interval):
		}
	}
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
