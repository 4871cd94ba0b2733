// Command quickstart starts a local caddy-vipa fleet on one machine: three
// Caddy nodes on 127.0.0.1-3 joined by serf, a demo application instance on
// each, and a VIPA 127.0.0.100:8080 routed by caddy-a. It sends a few
// connections through the VIPA, shows which node served each, prints the
// DPT, and runs until Ctrl-C (or exits at once with -exit).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

const (
	vipa     = "127.0.0.100"
	vipaPort = 8080
)

type node struct {
	name, ip  string
	adminPort int
	cmd       *exec.Cmd
}

// admin is the node's admin endpoint; Caddy's admin API answers loopback
// host names only, so every node takes a port of its own on 127.0.0.1.
func (n node) admin() string { return fmt.Sprintf("127.0.0.1:%d", n.adminPort) }

func main() {
	nodes := flag.Int("nodes", 3, "fleet size (1-3)")
	conns := flag.Int("connections", 9, "connections to send through the VIPA")
	exit := flag.Bool("exit", false, "stop after the demo instead of waiting for Ctrl-C")
	flag.Parse()
	if err := run(*nodes, *conns, *exit); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(size, conns int, exit bool) error {
	if size < 1 || size > 3 {
		return fmt.Errorf("-nodes %d: want 1 to 3", size)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "caddy-vipa-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin := filepath.Join(dir, "caddy")
	fmt.Println("building caddy with caddy-l4 and caddy-vipa (./cmd/caddy) ...")
	build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/caddy (run this from the repository root): %w", err)
	}

	fleet := []*node{{name: "caddy-a", ip: "127.0.0.1", adminPort: 2019}, {name: "caddy-b", ip: "127.0.0.2", adminPort: 2020}, {name: "caddy-c", ip: "127.0.0.3", adminPort: 2021}}[:size]
	defer func() {
		for _, n := range fleet {
			if n.cmd != nil && n.cmd.Process != nil {
				_ = n.cmd.Process.Signal(syscall.SIGTERM)
				_ = n.cmd.Wait()
			}
		}
	}()
	for i, n := range fleet {
		if err := startNode(dir, bin, n, i == 0); err != nil {
			return err
		}
		fmt.Printf("started %s: gossip %s:7946, admin %s, log %s\n", n.name, n.ip, n.admin(), filepath.Join(dir, n.name+".log"))
	}

	// One demo application instance per node, bound to the node's address.
	for _, n := range fleet {
		ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", n.ip, vipaPort))
		if err != nil {
			return fmt.Errorf("demo app on %s: %w", n.ip, err)
		}
		defer ln.Close()
		go serveDemo(ln, n.name)
		fmt.Printf("demo app listening on %s:%d (%s)\n", n.ip, vipaPort, n.name)
	}

	routing := fleet[0].admin()
	fmt.Printf("\nwaiting for the routing node's DPT to list %d targets ...\n", size)
	if err := waitDPT(ctx, routing, size); err != nil {
		return err
	}

	fmt.Printf("\n%d connections to the VIPA %s:%d:\n", conns, vipa, vipaPort)
	for i := range conns {
		who, err := hello(fmt.Sprintf("%s:%d", vipa, vipaPort))
		if err != nil {
			return fmt.Errorf("connection %d: %w", i+1, err)
		}
		fmt.Printf("  connection %d served by %s\n", i+1, who)
	}

	waitIdle(routing)
	fmt.Printf("\nDPT on the routing node (GET http://%s/vipa/dpt):\n", routing)
	if err := printDPT(routing); err != nil {
		return err
	}
	if exit {
		return nil
	}
	fmt.Printf("\nThe fleet is running. Try: curl -s http://%s/vipa/dpt  |  curl -s http://%s/vipa/members\nCtrl-C stops everything.\n", routing, routing)
	<-ctx.Done()
	fmt.Println("\nstopping")
	return nil
}

func startNode(dir, bin string, n *node, routing bool) error {
	var def, l4 string
	if routing {
		def = fmt.Sprintf("vipadistribute define %s port %d destip all", vipa, vipaPort)
		l4 = fmt.Sprintf(`
	layer4 {
		%s:%d {
			route {
				distribute
			}
		}
	}`, vipa, vipaPort)
	}
	join := ""
	if !routing {
		join = "join 127.0.0.1:7946"
	}
	caddyfile := fmt.Sprintf(`{
	admin %s
	vipadynamic {
		node %s
		advertise %s
		gossip %s:7946 {
			%s
		}
		%s
	}%s
}
`, n.admin(), n.name, n.ip, n.ip, join, def, l4)
	cfg := filepath.Join(dir, n.name+".Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, n.name+".log"))
	if err != nil {
		return err
	}
	home := filepath.Join(dir, n.name)
	n.cmd = exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	n.cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = childAttr()
	if err := n.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + n.admin() + "/vipa/members"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start; see %s", n.name, logf.Name())
}

// serveDemo greets each client with the node's name.
func serveDemo(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.WriteString(c, "hello from "+name+"\n")
		}()
	}
}

func hello(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(strings.TrimSpace(line), "hello from "), nil
}

type dptRow struct {
	VIPA        string `json:"vipa"`
	Port        int    `json:"port"`
	Node        string `json:"node"`
	Address     string `json:"address"`
	Ready       int    `json:"ready"`
	State       string `json:"state"`
	ActiveConns int    `json:"active_conns"`
	TotalConns  int    `json:"total_conns"`
}

func dpt(admin string) ([]dptRow, error) {
	resp, err := http.Get("http://" + admin + "/vipa/dpt")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rows []dptRow
	return rows, json.NewDecoder(resp.Body).Decode(&rows)
}

func waitDPT(ctx context.Context, admin string, want int) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err := dpt(admin)
		if err == nil && len(rows) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the DPT lists %d of %d targets after 20s (%v)", len(rows), want, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitIdle gives the last connections a moment to be released from the CRT.
func waitIdle(admin string) {
	for range 40 {
		resp, err := http.Get("http://" + admin + "/vipa/crt")
		if err != nil {
			return
		}
		var rows []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&rows)
		resp.Body.Close()
		if err != nil || len(rows) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func printDPT(admin string) error {
	rows, err := dpt(admin)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  VIPA\tPORT\tNODE\tADDRESS\tREADY\tSTATE\tACTIVE\tTOTAL")
	for _, r := range rows {
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%d\t%s\t%d\t%d\n", r.VIPA, r.Port, r.Node, r.Address, r.Ready, r.State, r.ActiveConns, r.TotalConns)
	}
	return w.Flush()
}
