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
// caddy-l4, with one Go thread like the Caddy contenders.
func (r *runner) gorelay(pp *harness.PortPicker, backend string) (*contender, error) {
	ct := &contender{name: cGoRelay, note: "the relay behind a plain Go accept loop (no Caddy, no caddy-l4)"}
	lport, err := pp.Pick(proxyIP)
	if err != nil {
		return ct, err
	}
	ct.addr = net.JoinHostPort(proxyIP, strconv.Itoa(lport))
	bin, err := buildGoRelay(r.dir)
	if err != nil {
		return ct, err
	}
	ct.launch = func() (*harness.Process, error) {
		return startProcess(cGoRelay, r.proxyCPU, filepath.Join(r.dir, "gorelay.log"), append([]string{"GOMAXPROCS=1"}, r.cfg.GoEnv...),
			bin, "-listen", ct.addr, "-backend", backend)
	}
	return ct, nil
}

func buildGoRelay(dir string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	bin := filepath.Join(dir, "gorelay")
	cmd := exec.Command("go", "build", "-o", bin, "./tests/bench/gorelay")
	cmd.Dir = strings.TrimSpace(string(out))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./tests/bench/gorelay: %w\n%s", err, out)
	}
	return bin, nil
}
