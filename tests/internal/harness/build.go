//go:build linux

// Package harness holds what the repository's measurement commands share:
// building this checkout's Caddy and picking ports for real processes.
package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ModulePath is this repository's Go module.
const ModulePath = "github.com/caddy-vipa/caddy-vipa"

// BuildCaddy builds ./cmd/caddy of this checkout into dir: figures are those
// of the tree, not of an installed binary.
func BuildCaddy(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find module root (run from inside the checkout): %w", err)
	}
	path, root, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if path != ModulePath {
		return "", fmt.Errorf("module here is %q, want %s: run from inside the caddy-vipa checkout", path, ModulePath)
	}
	bin := filepath.Join(dir, "caddy")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// RunDir makes a temporary directory for a run's binary, Caddyfiles and
// logs. done removes it, or with keep leaves it and says where on log.
func RunDir(prefix string, keep bool, log io.Writer) (dir string, done func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if keep {
			fmt.Fprintln(log, "configs and logs kept in", dir)
			return
		}
		os.RemoveAll(dir)
	}, nil
}

// CaddyBinary is bin, or with bin empty ./cmd/caddy built into dir (said on
// log: it takes a while).
func CaddyBinary(ctx context.Context, bin, dir string, log io.Writer) (string, error) {
	if bin != "" {
		return bin, nil
	}
	fmt.Fprintln(log, "building ./cmd/caddy")
	return BuildCaddy(ctx, dir)
}
