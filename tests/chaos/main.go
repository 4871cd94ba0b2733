//go:build linux

// Command chaos runs faults and hostile input against real Caddy processes
// built from this checkout, on loopback: held and short connections by the
// thousand, descriptor exhaustion, targets killed, blackholed and stopped,
// a routing node killed and restarted, reloads under load, silent clients,
// junk on the gossip port and a hostile member holding the fleet key. Each
// scenario prints its figures and a verdict; the command exits 1 if any
// scenario failed.
//
//	go run ./tests/chaos               # the fast scenarios
//	go run ./tests/chaos -long         # and the long ones
//	go run ./tests/chaos -run 'held|short'
package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"syscall"
	"time"
)

func main() {
	maybeServeApp()
	os.Exit(mainExit())
}

func mainExit() int {
	cfg := config{Log: os.Stderr, Sizes: fullSizes}
	var runRE string
	var quick, list bool
	flag.BoolVar(&quick, "quick", false, "run only the fast scenarios (the default without -long)")
	flag.BoolVar(&cfg.Long, "long", false, "run the long scenarios too")
	flag.StringVar(&runRE, "run", "", "run only the scenarios whose name matches this regexp")
	flag.BoolVar(&list, "list", false, "list the scenarios and exit")
	flag.StringVar(&cfg.CaddyBin, "caddy", "", "use this Caddy binary instead of building ./cmd/caddy")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the Caddyfiles and logs")
	flag.Parse()
	if quick && cfg.Long {
		fmt.Fprintln(os.Stderr, "chaos: -quick and -long exclude each other")
		return 2
	}
	if runRE != "" {
		re, err := regexp.Compile(runRE)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos: -run:", err)
			return 2
		}
		cfg.Run = re
	}
	if list {
		for _, s := range scenarios {
			kind := "fast"
			if s.long {
				kind = "long"
			}
			fmt.Printf("%-20s %s  %s\n", s.name, kind, s.what)
		}
		return 0
	}
	if len(selected(cfg)) == 0 {
		fmt.Fprintln(os.Stderr, "chaos: no scenario selected")
		return 2
	}
	if err := raiseNoFile(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	ctx, cancel := harness.RunContext("chaos", 30*time.Minute)
	defer cancel()
	fmt.Fprintf(os.Stderr, "load average %s\n", loadAvg())
	results, err := runSuite(ctx, cfg)
	failed := table(os.Stdout, results)
	fmt.Fprintf(os.Stderr, "load average %s\n", loadAvg())
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "chaos: interrupted")
		return 130
	case err != nil:
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	case failed > 0:
		fmt.Fprintf(os.Stderr, "chaos: %d of %d scenarios failed\n", failed, len(results))
		return 1
	}
	return 0
}

// raiseNoFile lifts the soft descriptor limit to the hard one: this process
// holds both ends of thousands of connections, and Caddy inherits it.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	return nil
}
