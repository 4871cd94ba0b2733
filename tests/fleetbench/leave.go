//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// leaveRun is one node taken out of the fleet.
type leaveRun struct {
	Node    string
	Gone    time.Duration // signal → the node's row gone from the routing node's DPT
	Verdict time.Duration // signal → serf on the routing node calls it failed or left
}

// leaveRuns takes a target out with sig, times its row's removal, starts it
// again and waits for its row to return, runs times, alternating targets.
// Both targets keep an application listening throughout, so a connection
// routed to a node that left would still be served: none may be.
func leaveRuns(ctx context.Context, f *fleet, cfg config, pr *profileResult, sig syscall.Signal, runs int) ([]leaveRun, error) {
	for _, n := range f.targets() {
		a, err := listenApp(net.JoinHostPort(n.ip, strconv.Itoa(f.port)), n.name)
		if err != nil {
			return nil, err
		}
		defer a.close()
	}
	var out []leaveRun
	for i := range runs {
		target := f.targets()[i%len(f.targets())]
		if err := waitRows(ctx, f, len(f.targets())); err != nil {
			return out, err
		}
		if err := f.settle(ctx); err != nil {
			return out, err
		}
		r, err := leaveOnce(ctx, f, cfg, target, sig)
		if err == nil {
			err = routedAround(f, target)
		}
		switch {
		case ctx.Err() != nil:
			return out, ctx.Err()
		case err != nil:
			pr.fail("%s run %d (%s): %v", sigName(sig), i+1, target.name, err)
		default:
			out = append(out, r)
			if cfg.Verbose {
				fmt.Fprintf(cfg.Log, "%s: %s %s: rows gone %s, serf verdict %s\n", pr.Profile, sigName(sig), target.name, fmtDur(r.Gone), fmtDur(r.Verdict))
			}
		}
		target.proc.Reap(5 * time.Second)
		if err := f.start(ctx, target); err != nil {
			return out, err
		}
		f.restarted = time.Now()
		if err := f.waitAlive(ctx, f.routing(), len(f.nodes), 30*time.Second); err != nil {
			return out, err
		}
	}
	return out, waitRows(ctx, f, len(f.targets()))
}

// routedAround checks that new connections avoid a node whose rows went,
// though its application still listens.
func routedAround(f *fleet, gone *node) error {
	for range 4 {
		got, err := greet(f.vipaAddr())
		if err != nil {
			return fmt.Errorf("a connection to the VIPA after %s's rows went: %w", gone.name, err)
		}
		if got == gone.name {
			return fmt.Errorf("a connection to the VIPA went to %s after its rows went", gone.name)
		}
	}
	return nil
}

// waitRows waits for a row from every target (the routing node has no
// application of its own here).
func waitRows(ctx context.Context, f *fleet, want int) error {
	_, err := harness.Poll(ctx, 30*time.Second, 20*time.Millisecond, fmt.Sprintf("%d DPT rows", want), func() (bool, string, error) {
		rows, err := dpt(f.routing().admin)
		return len(rows) == want, dptString(rows), err
	})
	return err
}

func leaveOnce(ctx context.Context, f *fleet, cfg config, target *node, sig syscall.Signal) (leaveRun, error) {
	admin := f.routing().admin
	r := leaveRun{Node: target.name}
	verdict := map[syscall.Signal]string{syscall.SIGKILL: "failed", syscall.SIGTERM: "left"}[sig]
	t0 := time.Now()
	if err := target.proc.Signal(sig); err != nil {
		return r, err
	}
	// Both moments are read in one loop: the verdict shows how much of the
	// wait is serf's failure detection and how much is ours.
	_, err := harness.Poll(ctx, 30*time.Second, cfg.Poll, fmt.Sprintf("%s's row to go after %s", target.name, sigName(sig)), func() (bool, string, error) {
		m, err := members(admin)
		if err != nil {
			return false, "", err
		}
		now := time.Since(t0)
		if r.Verdict == 0 && m[target.name] == verdict {
			r.Verdict = now
		}
		rows, err := dpt(admin)
		if err != nil {
			return false, "", err
		}
		if _, ok := rowOf(rows, target.name); !ok && r.Gone == 0 {
			r.Gone = time.Since(t0)
		}
		return r.Gone > 0 && r.Verdict > 0, fmt.Sprintf("members %v, DPT %s", m, dptString(rows)), nil
	})
	return r, err
}

// settle waits after a restart until the fleet probes at its normal pace:
// the restarted node refutes the suspicion others still hold of it, which
// raises its Lifeguard awareness score and stretches its probe interval
// (by score+1) until successful probes bring the score back down. A crash
// right after a restart can then take seconds longer to detect.
func (f *fleet) settle(ctx context.Context) error {
	if f.restarted.IsZero() {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(f.restarted.Add(5 * profiles[f.profile].probe))):
		return nil
	}
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}
