package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"
)

// leaveRun is one node taken out of the fleet.
type leaveRun struct {
	Node    string
	Gone    time.Duration // signal → the node's row gone from the routing node's DPT
	Verdict time.Duration // signal → serf on the routing node calls it failed or left
}

// leaveRuns takes a target out with sig, times its row's removal, starts it
// again and waits for its row to return, runs times, alternating targets.
// Both targets keep an application listening throughout.
func leaveRuns(ctx context.Context, f *fleet, cfg config, sig syscall.Signal, runs int) ([]leaveRun, error) {
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
		if err := waitRows(ctx, f, cfg, len(f.targets())); err != nil {
			return out, err
		}
		if err := f.settle(ctx); err != nil {
			return out, err
		}
		r, err := leaveOnce(ctx, f, cfg, target, sig)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		target.proc.reap(5 * time.Second)
		if err := f.start(ctx, target); err != nil {
			return out, err
		}
		f.restarted = time.Now()
		if err := f.waitAlive(ctx, f.routing(), len(f.nodes), 30*time.Second); err != nil {
			return out, err
		}
	}
	return out, waitRows(ctx, f, cfg, len(f.targets()))
}

// waitRows waits for a row from every target (the routing node has no
// application of its own here).
func waitRows(ctx context.Context, f *fleet, cfg config, want int) error {
	_, err := poll(ctx, 30*time.Second, 20*time.Millisecond, fmt.Sprintf("%d DPT rows", want), func() (bool, string, error) {
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
	if err := target.proc.signal(sig); err != nil {
		return r, err
	}
	// Both moments are read in one loop: the verdict shows how much of the
	// wait is serf's failure detection and how much is ours.
	_, err := poll(ctx, 30*time.Second, cfg.Poll, fmt.Sprintf("%s's row to go after %s", target.name, sig), func() (bool, string, error) {
		m, err := members(admin)
		if err != nil {
			return false, "", err
		}
		now := time.Since(t0)
		if r.Verdict == 0 && (m[target.name] == verdict || m[target.name] == "left") {
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
