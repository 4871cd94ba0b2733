package fleet

import (
	"context"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
)

const (
	// upkeepInterval paces the table work kept off the connection path:
	// effective weights (TSR, slow start) and due probes.
	upkeepInterval = 250 * time.Millisecond
	// sweepInterval paces the removal of expired affinities and of the
	// drains of departed targets.
	sweepInterval = 5 * time.Second
	// probeTimeout bounds a probe's dial of an unhealthy target.
	probeTimeout = 2 * time.Second
)

// upkeep is the routing node's periodic work on its tables: it refreshes
// effective weights, probes unhealthy targets whose backoff has passed and
// sweeps expired affinities. It runs for the fleet's life, across reloads.
type upkeep struct {
	f      *Fleet
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startUpkeep(f *Fleet) *upkeep {
	ctx, cancel := context.WithCancel(context.Background())
	u := &upkeep{f: f, cancel: cancel}
	u.wg.Go(func() { u.run(ctx) })
	return u
}

// stop ends the loop and waits for probes under way; nil is a no-op.
func (u *upkeep) stop() {
	if u == nil {
		return
	}
	u.cancel()
	u.wg.Wait()
}

func (u *upkeep) run(ctx context.Context) {
	tick := time.NewTicker(upkeepInterval)
	defer tick.Stop()
	lastSweep := time.Now()
	drift := time.NewTicker(driftPeriod())
	defer drift.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-drift.C:
			u.f.countConns()
			u.f.checkDrift()
		case now := <-tick.C:
			u.f.DPT.Refresh(now)
			for _, t := range u.f.DPT.Due(now) {
				if u.f.carriesHealth(t.VIPA) {
					t.Postpone(now) // a standby row: its routing node probes it
					continue
				}
				u.wg.Go(func() { u.probe(ctx, t) })
			}
			if now.Sub(lastSweep) >= sweepInterval {
				lastSweep = now
				u.f.CRT.SweepAffinity(now)
				u.f.pruneDrains() // of targets reaped after they failed
			}
		}
	}
}

// probe dials an unhealthy target once; a target that answers is healthy
// again. Clients do not pay for this dial: they go to healthy targets
// meanwhile.
func (u *upkeep) probe(ctx context.Context, t *tables.Target) {
	d := net.Dialer{Timeout: probeTimeout}
	c, err := d.DialContext(ctx, "tcp", t.Address.String())
	if err == nil {
		c.Close()
	}
	if ctx.Err() != nil {
		t.ProbeDone(time.Now(), false)
		return
	}
	if t.ProbeDone(time.Now(), err == nil) {
		u.f.HealthChanged(u.f.logger, t, true, "probe")
	}
}

// HealthChanged counts and logs a target's health transition; the tables
// report each transition once, however many clients saw it.
func (f *Fleet) HealthChanged(log *zap.Logger, t *tables.Target, healthy bool, by string) {
	if healthy {
		f.Counters.HealthUp.Add(1)
	} else {
		f.Counters.HealthDown.Add(1)
	}
	fields := []zap.Field{zap.Stringer("vipa", t.VIPA), zap.Uint16("port", t.Port), zap.String("node", t.Node),
		zap.Stringer("address", t.Address), zap.Int("tsr", t.TSR()), zap.String("by", by)}
	if healthy {
		log.Info("target healthy again", fields...)
		return
	}
	log.Warn("target unhealthy: no new connections while a healthy one has room; probing it",
		append(fields, zap.Duration("first_probe_in", tables.ProbeBackoff))...)
}
