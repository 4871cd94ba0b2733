//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const distributeModule = "layer4.handlers.distribute"

// caddyHas tells whether the binary registers a module.
func caddyHas(bin, module string) (bool, error) {
	out, err := exec.Command(bin, "list-modules").Output()
	if err != nil {
		return false, fmt.Errorf("%s list-modules: %w", bin, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == module {
			return true, nil
		}
	}
	return false, nil
}

func proxyCaddyfile(admin, listen, upstream string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	layer4 {
		%s {
			route {
				proxy %s %s %s
			}
		}
	}
}
`, admin, listen, upstream, upstream, upstream)
}

// l4relayCaddyfile relays listen to upstream through tests/bench/l4relay.
func l4relayCaddyfile(admin, listen, upstream string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	layer4 {
		%s {
			route {
				relay %s
			}
		}
	}
}
`, admin, listen, upstream)
}

// distributeCaddyfile routes the VIPA port to the targets listening on
// advertise:port; the DPT is filled by the listener watch, not by config.
func distributeCaddyfile(admin, advertise, gossip, vipa string, port int) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	vipadynamic {
		node bench
		advertise %s
		gossip %s
		vipadistribute define %s port %d destip all
	}
	layer4 {
		%s:%d {
			route {
				distribute
			}
		}
	}
}
`, admin, advertise, gossip, vipa, port, vipa, port)
}

// startCaddy runs the binary on a Caddyfile with one Go thread, its state
// kept inside dir.
func startCaddy(bin, dir, name, caddyfile string, cpu int, goEnv []string) (*harness.Process, error) {
	cfg := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o644); err != nil {
		return nil, err
	}
	env := []string{
		"GOMAXPROCS=1",
		"XDG_CONFIG_HOME=" + filepath.Join(dir, name, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, name, "data"),
	}
	env = append(env, goEnv...)
	return startProcess(name, cpu, filepath.Join(dir, name+".log"), env,
		bin, "run", "--config", cfg, "--adapter", "caddyfile")
}

// waitDPT waits until the routing node has a ready target for vipa:port.
func waitDPT(ctx context.Context, p *harness.Process, admin, vipa string, port int, timeout time.Duration) (harness.DPTRow, error) {
	end := time.Now().Add(timeout)
	cl := http.Client{Timeout: time.Second}
	last := "no answer"
	for {
		var rows []harness.DPTRow
		if err := harness.GetJSON(&cl, admin, "/vipa/dpt", &rows); err == nil {
			for _, r := range rows {
				if r.VIPA == vipa && r.Port == port && r.Ready >= 1 {
					return r, nil
				}
			}
			b, _ := json.Marshal(rows)
			last = string(b)
		} else {
			last = err.Error()
		}
		if !p.Alive() {
			return harness.DPTRow{}, fmt.Errorf("caddy exited (%v):\n%s", p.Err(), harness.LogTail(p.Log, 15))
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return harness.DPTRow{}, fmt.Errorf("no ready DPT row for %s:%d after %v; /vipa/dpt: %s", vipa, port, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fetchProfile saves a CPU profile of a Caddy contender, taken through its
// admin endpoint while a case runs.
func fetchProfile(admin string, seconds int, path string) error {
	cl := http.Client{Timeout: time.Duration(seconds+10) * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
