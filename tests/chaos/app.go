//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The application protocol: the app greets each connection with its name
// and a newline; the client then sends one byte, 'E' for an echo of
// everything after it or 'C' for a close at once (the app closes first, so
// the many short connections leave no TIME_WAIT on the client's ports). A
// client that sends nothing is held.
const (
	modeEcho  = 'E'
	modeClose = 'C'
)

// app is an application instance of a target node, in this process.
type app struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func listenApp(addr, name string) (*app, error) {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("application listen %s: %w", addr, err)
	}
	a := &app{name: name, ln: ln, conns: map[net.Conn]struct{}{}}
	a.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns[c] = struct{}{}
			a.mu.Unlock()
			a.wg.Go(func() {
				serveApp(c, name)
				a.mu.Lock()
				delete(a.conns, c)
				a.mu.Unlock()
			})
		}
	})
	return a, nil
}

// close stops listening and ends every connection.
func (a *app) close() {
	a.ln.Close()
	a.mu.Lock()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

func serveApp(c net.Conn, name string) {
	defer c.Close()
	if _, err := io.WriteString(c, name+"\n"); err != nil {
		return
	}
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil || mode[0] != modeEcho {
		return
	}
	_, _ = io.Copy(c, c)
}

// appEnv names the address and name a child process serves as an app.
const appEnv = "CADDY_VIPA_CHAOS_APP"

// maybeServeApp turns this process into an app when started as one by
// startAppProcess: so a scenario can kill or stop an application.
func maybeServeApp() {
	v := os.Getenv(appEnv)
	if v == "" {
		return
	}
	addr, name, _ := strings.Cut(v, " ")
	if _, err := listenApp(addr, name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {}
}

// startAppProcess runs an app in a child process (this executable again).
func (e *env) startAppProcess(ctx context.Context, addr, name string) (*harness.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	log := filepath.Join(e.dir, e.scenario, name+"-app.log")
	if err := os.MkdirAll(filepath.Dir(log), 0o700); err != nil {
		return nil, err
	}
	p, err := harness.StartProcess(name+"-app", log, []string{appEnv + "=" + addr + " " + name}, nil, self, "-test.run=^$")
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	_, err = harness.Poll(ctx, 10*time.Second, 10*time.Millisecond, "app "+name+" to listen", func() (bool, string, error) {
		if !p.Alive() {
			return false, "", fmt.Errorf("app %s exited (%v): %s", name, p.Err(), harness.LogTail(log, 5))
		}
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "ready"), "", nil
	})
	return p, err
}
