package status

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	_ "github.com/caddy-vipa/caddy-vipa/module" // the admin routes the page reads
)

func TestUnmarshalCaddyfile(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("vipa_status {\n interval 1s\n busiest_conns 5\n}")); err != nil {
		t.Fatal(err)
	}
	if int64(h.Interval) != 1e9 || h.BusiestConns != 5 {
		t.Fatalf("parsed %+v", h)
	}
	for in, want := range map[string]string{
		"vipa_status extra":                            "wrong argument count",
		"vipa_status {\n interval\n}":                  "wrong argument count",
		"vipa_status {\n interval soon\n}":             `interval "soon"`,
		"vipa_status {\n interval -1s\n}":              "positive",
		"vipa_status {\n busiest_conns -1\n}":          "busiest_conns",
		"vipa_status {\n colour red\n}":                "unknown vipa_status option 'colour'",
		"vipa_status {\n interval 1s\n interval 2s\n}": "duplicate vipa_status option 'interval'",
		"vipa_status {\n interval 1s 2s\n}":            "wrong argument count",
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: %v, want an error with %q and the line", in, err, want)
		}
	}
}

func TestBusiestConns(t *testing.T) {
	raw := json.RawMessage(`[
		{"client":"a","bytes_to_target":5,"bytes_to_client":5,"since":"2026-01-01T00:00:02Z"},
		{"client":"b","bytes_to_target":100,"bytes_to_client":0,"since":"2026-01-01T00:00:03Z","reason":"rr"},
		{"client":"c","bytes_to_target":0,"bytes_to_client":10,"since":"2026-01-01T00:00:01Z"}]`)
	top, total, err := busiestConns(raw, 2)
	if err != nil || total != 3 || len(top) != 2 {
		t.Fatalf("top %s, total %d, %v", top, total, err)
	}
	if !strings.Contains(string(top[0]), `"client":"b"`) || !strings.Contains(string(top[0]), `"reason":"rr"`) || !strings.Contains(string(top[1]), `"client":"c"`) {
		t.Fatalf("busiest first, ties oldest first, rows whole: %s", top)
	}
	if _, _, err := busiestConns(json.RawMessage(`{}`), 2); err == nil {
		t.Fatal("an object is no CRT")
	}
}

// The page's inline style and script are exactly what the policy allows,
// and nothing is fetched from elsewhere.
func TestPagePolicy(t *testing.T) {
	html := string(page.html)
	for _, tag := range []string{"style", "script"} {
		open, close := "<"+tag+">", "</"+tag+">"
		i, j := strings.Index(html, open), strings.Index(html, close)
		if i < 0 || j < i || strings.Count(html, open) != 1 {
			t.Fatalf("one inline %s expected", tag)
		}
		sum := sha256.Sum256([]byte(html[i+len(open) : j]))
		if !strings.Contains(page.csp, tag+"-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
			t.Errorf("the policy does not allow the page's %s", tag)
		}
	}
	for _, ext := range []string{"http://", "https://", "//fonts", "@import", "url("} {
		if strings.Contains(html, ext) {
			t.Errorf("the page refers to %q", ext)
		}
	}
	if !strings.Contains(page.csp, "default-src 'none'") || !strings.Contains(page.csp, "connect-src 'self'") {
		t.Errorf("policy %s", page.csp)
	}
}

// Without a running app the snapshot holds the read routes, empty.
func TestSnapshotWithoutApp(t *testing.T) {
	src, err := newSource()
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.snapshot(20)
	if err != nil {
		t.Fatal(err)
	}
	var snap map[string]json.RawMessage
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"members", "definitions", "dpt", "crt"} {
		if string(snap[f]) != "[]" {
			t.Errorf("%s: %s, want []", f, snap[f])
		}
	}
	if string(snap["crt_total"]) != "0" {
		t.Errorf("crt_total %s", snap["crt_total"])
	}
}
