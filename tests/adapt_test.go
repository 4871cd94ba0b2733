//go:build linux

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddy-vipa/caddy-vipa"
	_ "github.com/mholt/caddy-l4"
)

// TestCaddyfileAdapt checks every *.caddytest: a Caddyfile, a line of
// dashes, and the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("*.caddytest")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.caddytest files")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, json, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatalf("%s: no ---------- separator", f)
			}
			if !caddytest.CompareAdapt(t, f, strings.TrimSpace(caddyfile)+"\n", "caddyfile", strings.TrimSpace(json)) {
				t.Errorf("%s does not adapt to its JSON", f)
			}
		})
	}
}

// TestExamplesAdapt keeps the example Caddyfiles valid.
func TestExamplesAdapt(t *testing.T) {
	files, err := filepath.Glob("../examples/*.Caddyfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example Caddyfiles: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filename": f})
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		for _, w := range warnings {
			t.Errorf("%s: warning: %s", f, w)
		}
	}
}
