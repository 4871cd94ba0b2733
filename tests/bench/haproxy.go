//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const haproxyHint = "haproxy not found on PATH: install it to compare (Debian/Ubuntu: apt-get install haproxy); measuring without it"

// haproxyVersion returns the first line of `haproxy -v`, or "" when absent.
func haproxyVersion() (string, string) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return "", ""
	}
	out, _ := exec.Command(bin, "-v").Output()
	v, _, _ := strings.Cut(string(out), "\n")
	return bin, strings.TrimSpace(v)
}

// haproxyConfig is the reference setup: plain mode tcp, one thread,
// roundrobin over the three backends, default buffers (no splice).
func haproxyConfig(listen, backend string, maxconn int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	nbthread 1
	maxconn %d

defaults
	mode tcp
	timeout connect 5s
	timeout client 5m
	timeout server 5m
	maxconn %d

frontend bench
	bind %s
	default_backend targets

backend targets
	balance roundrobin
`, maxconn, maxconn, listen)
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "\tserver t%d %s\n", i, backend)
	}
	return b.String()
}

func startHAProxy(bin, dir, listen, backend string, maxconn, cpu int) (*harness.Process, error) {
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(listen, backend, maxconn)), 0o644); err != nil {
		return nil, err
	}
	return startProcess(cHAProxy, cpu, filepath.Join(dir, "haproxy.log"), nil, bin, "-f", cfg, "-db")
}
