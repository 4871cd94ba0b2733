//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
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
	lport, err := pp.Pick(proxyIP)
	if err != nil {
		return ct, err
	}
	ct.addr = net.JoinHostPort(proxyIP, strconv.Itoa(lport))
	bin, err := buildGoRelay(r.dir, ct.name)
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

// buildGoRelay builds tests/bench/gorelay into dir as name: one binary per
// contender, so a build never replaces a running one.
func buildGoRelay(dir, name string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, "./tests/bench/gorelay")
	cmd.Dir = strings.TrimSpace(string(out))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./tests/bench/gorelay: %w\n%s", err, out)
	}
	return bin, nil
}
