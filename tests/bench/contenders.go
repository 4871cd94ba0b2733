//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"
)

// Contender names, in table order.
const (
	cDirect     = "direct"
	cDistribute = "distribute"
	cGoRelay    = "gorelay"
	cGoCopy     = "gocopy"
	cL4Relay    = "l4relay"
	cProxy      = "l4proxy"
	cHAProxy    = "haproxy"
)

var allContenders = []string{cDirect, cDistribute, cGoRelay, cGoCopy, cL4Relay, cProxy, cHAProxy}

// optIn contenders run only when -contenders names them.
var optIn = []string{cGoCopy, cL4Relay}

// contender is one way from the load client to the backends.
type contender struct {
	name   string
	addr   string                           // where the load client connects
	launch func() (*harness.Process, error) // starts the proxy; nil for direct
	proc   *harness.Process                 // the running proxy
	admin  string                           // Caddy admin address (pprof); empty for others
	note   string                           // one line for the header: version, config
	broken bool                             // could not be restarted: skipped from then on
}

// probe does one idle-mode exchange through addr: the path works end to end.
func probe(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{modeIdle}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[0] != idleReply {
		return fmt.Errorf("probe reply %#x, want %#x", b[0], idleReply)
	}
	return nil
}

// waitReady probes until the contender passes a byte end to end.
func waitReady(ctx context.Context, ct *contender, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for {
		err := probe(ct.addr)
		if err == nil {
			return nil
		}
		if ct.proc != nil && !ct.proc.Alive() {
			return fmt.Errorf("%s exited (%v):\n%s", ct.name, ct.proc.Err(), harness.LogTail(ct.proc.Log, 15))
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready at %s after %v: %v", ct.name, ct.addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *runner) wanted(name string) (want, explicit bool) {
	if len(r.cfg.Contenders) == 0 {
		return !slices.Contains(optIn, name), false
	}
	return slices.Contains(r.cfg.Contenders, name), true
}

// startContenders starts every wanted contender that can run here, in table
// order. A contender asked for by name that cannot run is a failure; one
// merely absent from this machine is a note.
func (r *runner) startContenders(pp *harness.PortPicker, port int) []*contender {
	var cts []*contender
	backend := net.JoinHostPort(backendIP, strconv.Itoa(port))
	add := func(ct *contender, err error) {
		if err == nil {
			err = r.up(ct)
		}
		if err != nil {
			r.fails.conn("%s: %v", ct.name, err)
			return
		}
		cts = append(cts, ct)
	}
	if want, _ := r.wanted(cDirect); want {
		add(&contender{name: cDirect, addr: backend, note: "client → backend, no proxy"}, nil)
	}
	wantDist, explicitDist := r.wanted(cDistribute)
	wantProxy, _ := r.wanted(cProxy)
	var bin string
	if wantDist || wantProxy {
		var err error
		bin, err = r.caddy()
		if err != nil {
			r.fails.conn("caddy: %v", err)
			wantDist, wantProxy = false, false
		}
		if wantDist {
			if has, err := caddyHas(bin, distributeModule); err != nil || !has {
				msg := fmt.Sprintf("%s is not registered in ./cmd/caddy: distribute not measured", distributeModule)
				if err != nil {
					msg = err.Error()
				}
				if explicitDist || err != nil {
					r.fails.conn("%s", msg)
				} else {
					fmt.Fprintln(r.cfg.Err, "note: "+msg)
				}
				wantDist = false
			}
		}
		if wantDist {
			add(r.distribute(pp, bin, port))
		}
	}
	if want, _ := r.wanted(cGoRelay); want {
		add(r.gorelay(pp, backend, false))
	}
	if want, _ := r.wanted(cGoCopy); want {
		add(r.gorelay(pp, backend, true))
	}
	if want, _ := r.wanted(cL4Relay); want {
		add(r.l4relay(pp, backend))
	}
	if wantProxy {
		add(r.l4proxy(pp, bin, backend))
	}
	if want, explicit := r.wanted(cHAProxy); want {
		bin, version := haproxyVersion()
		switch {
		case bin == "" && explicit:
			r.fails.conn("%s", haproxyHint)
		case bin == "":
			fmt.Fprintln(r.cfg.Err, "note: "+haproxyHint)
		default:
			add(r.haproxy(pp, bin, version, backend))
		}
	}
	return cts
}

// up starts the contender's process, if it has one, and waits until a byte
// passes through it; the process must sit on the proxy CPU.
func (r *runner) up(ct *contender) error {
	if ct.launch != nil {
		p, err := ct.launch()
		if p != nil {
			r.procs = append(r.procs, p)
			ct.proc = p
		}
		if err != nil {
			return err
		}
	}
	if err := waitReady(r.ctx, ct, 10*time.Second); err != nil {
		return err
	}
	if ct.proc != nil && r.proxyCPU >= 0 {
		if got := cpusAllowedList(ct.proc.Pid()); got != strconv.Itoa(r.proxyCPU) {
			return fmt.Errorf("runs on CPUs %q, want %d", got, r.proxyCPU)
		}
	}
	return nil
}

// restart replaces the contender's process with a fresh one.
func (r *runner) restart(ct *contender) error {
	if ct.launch == nil {
		return nil
	}
	ct.proc.Stop()
	return r.up(ct)
}

func (r *runner) caddy() (string, error) {
	if r.cfg.CaddyBin != "" {
		return r.cfg.CaddyBin, nil
	}
	r.say("building ./cmd/caddy ...")
	return harness.BuildCaddy(r.ctx, r.dir)
}

// proxyAddrs picks n free ports on the proxy's address, as host:port.
func proxyAddrs(pp *harness.PortPicker, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		port, err := pp.Pick(proxyIP)
		if err != nil {
			return nil, err
		}
		out[i] = net.JoinHostPort(proxyIP, strconv.Itoa(port))
	}
	return out, nil
}

// caddyLaunch starts the Caddy binary bin as contender name.
func (r *runner) caddyLaunch(bin, name, caddyfile string) func() (*harness.Process, error) {
	return func() (*harness.Process, error) {
		return startCaddy(bin, r.dir, name, caddyfile, r.proxyCPU, r.cfg.GoEnv)
	}
}

func (r *runner) distribute(pp *harness.PortPicker, bin string, port int) (*contender, error) {
	ct := &contender{name: cDistribute, addr: net.JoinHostPort(vipa, strconv.Itoa(port))}
	addrs, err := proxyAddrs(pp, 2)
	if err != nil {
		return ct, err
	}
	ct.admin = addrs[0]
	caddyfile := distributeCaddyfile(ct.admin, backendIP, addrs[1], vipa, port)
	start := r.caddyLaunch(bin, cDistribute, caddyfile)
	ct.launch = func() (*harness.Process, error) {
		p, err := start()
		if err != nil {
			return nil, err
		}
		row, err := waitDPT(r.ctx, p, ct.admin, vipa, port, 10*time.Second)
		ct.note = fmt.Sprintf("./cmd/caddy, VIPA %s, DPT row %s ready=%d (listener watch)", ct.addr, row.Address, row.Ready)
		return p, err
	}
	return ct, nil
}

func (r *runner) l4proxy(pp *harness.PortPicker, bin, backend string) (*contender, error) {
	ct := &contender{name: cProxy, note: "./cmd/caddy, caddy-l4 v0.1.2 proxy handler"}
	addrs, err := proxyAddrs(pp, 2)
	if err != nil {
		return ct, err
	}
	ct.addr, ct.admin = addrs[0], addrs[1]
	ct.launch = r.caddyLaunch(bin, cProxy, proxyCaddyfile(ct.admin, ct.addr, backend))
	return ct, nil
}

func (r *runner) haproxy(pp *harness.PortPicker, bin, version, backend string) (*contender, error) {
	ct := &contender{name: cHAProxy, note: version + ", mode tcp, nbthread 1"}
	addrs, err := proxyAddrs(pp, 1)
	if err != nil {
		return ct, err
	}
	ct.addr = addrs[0]
	ct.launch = func() (*harness.Process, error) {
		return startHAProxy(bin, r.dir, ct.addr, backend, r.cfg.IdleConns+256, r.proxyCPU)
	}
	return ct, nil
}
