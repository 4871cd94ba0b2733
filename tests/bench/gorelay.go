//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// gorelay starts tests/bench/gorelay: the relay without Caddy and
// caddy-l4, with one Go thread like the Caddy contenders; with copy, the
// gocopy contender: the same accept loop relaying the idiomatic Go way.
func (r *runner) gorelay(pp *harness.PortPicker, backend string, copyMode bool) (*contender, error) {
	ct := &contender{name: cGoRelay, note: "the relay behind a plain Go accept loop (no Caddy, no caddy-l4)"}
	var extra []string
	if copyMode {
		ct = &contender{name: cGoCopy, note: "a plain Go proxy: accept loop, net.Dial, a goroutine per direction"}
		extra = []string{"-copy"}
	}
	addrs, err := proxyAddrs(pp, 1)
	if err != nil {
		return ct, err
	}
	ct.addr = addrs[0]
	bin, err := buildCommand(r.dir, ct.name, "./tests/bench/gorelay")
	if err != nil {
		return ct, err
	}
	ct.launch = func() (*harness.Process, error) {
		argv := append([]string{bin, "-listen", ct.addr, "-backend", backend}, extra...)
		return startProcess(ct.name, r.proxyCPU, filepath.Join(r.dir, ct.name+".log"), append([]string{"GOMAXPROCS=1"}, r.cfg.GoEnv...),
			argv...)
	}
	return ct, nil
}

// l4relay starts tests/bench/l4relay: Caddy with caddy-l4 whose route's
// only handler relays to the backend with this plugin's relay. Beside
// distribute it splits what a connection costs into caddy-l4's share and
// the plugin's (the DPT lookup, the CRT, metrics, the vipadynamic app).
func (r *runner) l4relay(pp *harness.PortPicker, backend string) (*contender, error) {
	ct := &contender{name: cL4Relay, note: "caddy-l4 v0.1.2 with a handler that only relays (this relay, fixed target; no DPT, CRT or vipadynamic app)"}
	addrs, err := proxyAddrs(pp, 2)
	if err != nil {
		return ct, err
	}
	ct.addr, ct.admin = addrs[0], addrs[1]
	bin, err := buildCommand(r.dir, ct.name, "./tests/bench/l4relay")
	if err != nil {
		return ct, err
	}
	ct.launch = r.caddyLaunch(bin, cL4Relay, l4relayCaddyfile(ct.admin, ct.addr, backend))
	return ct, nil
}

// buildCommand builds the package pkg into dir as name: one binary per
// contender, so a build never replaces a running one.
func buildCommand(dir, name, pkg string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = strings.TrimSpace(string(out))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}
