//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// vrrpPair is the comparison: keepalived with VRRP's defaults (1 s
// adverts) on a and b, each beside an application listening on the VIPA,
// as HAProxy would.
type vrrpPair struct {
	lab  *netlab.Lab
	ka   map[string]*harness.Process
	apps map[string]*app
}

const keepalivedConf = `global_defs {
	router_id ka-%s
}
vrrp_instance VI_1 {
	state %s
	interface %s
	virtual_router_id 51
	priority %d
	advert_int 1
	virtual_ipaddress {
		%s dev %s
	}
}
`

func startVRRP(dir string) (*vrrpPair, error) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return nil, fmt.Errorf("keepalived not installed (apt-get install keepalived): %w", err)
	}
	lab, err := netlab.New("a", "b")
	if err != nil {
		return nil, err
	}
	v := &vrrpPair{lab: lab, ka: map[string]*harness.Process{}, apps: map[string]*app{}}
	for i, h := range lab.Nodes {
		ln, err := h.Listen("tcp", vipaAddr())
		if err != nil {
			v.close()
			return nil, err
		}
		v.apps[h.Name] = startApp("app-"+h.Name, ln)
		state, prio := "MASTER", 150
		if i > 0 {
			state, prio = "BACKUP", 100
		}
		conf := filepath.Join(dir, "keepalived-"+h.Name+".conf")
		body := fmt.Sprintf(keepalivedConf, h.Name, state, netlab.Dev, prio, netlab.VIPAPrefix(), netlab.Dev)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			v.close()
			return nil, err
		}
		p, err := harness.StartProcess("keepalived-"+h.Name, filepath.Join(dir, "keepalived-"+h.Name+".log"), nil, nil,
			"ip", "netns", "exec", h.NS, "keepalived", "--dont-fork", "--log-console", "--vrrp", "-f", conf,
			"-p", filepath.Join(dir, h.Name+".pid"), "-r", filepath.Join(dir, h.Name+".vrrp.pid"))
		if err != nil {
			v.close()
			return nil, err
		}
		v.ka[h.Name] = p
	}
	deadline := time.Now().Add(30 * time.Second)
	for !lab.Node("a").Holds(netlab.VIPAPrefix()) || lab.Node("b").Holds(netlab.VIPAPrefix()) {
		if time.Now().After(deadline) {
			v.close()
			return nil, fmt.Errorf("keepalived: a never became the only master: %s", harness.LogTail(v.ka["a"].Log, 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return v, nil
}

// crash kills a's keepalived (its whole process group, as a crash would)
// and its application.
func (v *vrrpPair) crash() {
	_ = syscall.Kill(-v.ka["a"].Pid(), syscall.SIGKILL)
	v.ka["a"].Reap(5 * time.Second)
	v.apps["a"].stop()
}

func (v *vrrpPair) close() {
	for _, p := range v.ka {
		if p.Alive() {
			_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
			p.Reap(3 * time.Second)
		}
	}
	for _, a := range v.apps {
		a.stop()
	}
	_ = v.lab.Close()
}
