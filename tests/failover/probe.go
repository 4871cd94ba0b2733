//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// attempt is one client connection through the VIPA.
type attempt struct {
	start, end time.Time
	ok         bool
	app        string // the application that greeted
	err        string // why it failed
}

// prober opens new connections to the VIPA from the client namespace at a
// fixed rate, each connect and greeting bounded by timeout, and keeps every
// outcome.
type prober struct {
	host    *netlab.Host
	addr    string
	every   time.Duration
	timeout time.Duration

	mu       sync.Mutex
	attempts []attempt
	stop     chan struct{}
	done     sync.WaitGroup
}

func startProber(h *netlab.Host, addr string, rate int, timeout time.Duration) *prober {
	p := &prober{host: h, addr: addr, every: time.Second / time.Duration(rate), timeout: timeout, stop: make(chan struct{})}
	p.done.Add(1)
	go p.run()
	return p
}

func (p *prober) run() {
	defer p.done.Done()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.done.Add(1)
			go func() {
				defer p.done.Done()
				a := p.try()
				p.mu.Lock()
				p.attempts = append(p.attempts, a)
				p.mu.Unlock()
			}()
		}
	}
}

func (p *prober) try() attempt {
	a := attempt{start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	c, err := p.host.Dial(ctx, "tcp", p.addr)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(p.timeout))
		var line string
		line, err = bufio.NewReader(c).ReadString('\n')
		c.Close()
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "hello from "); err == nil && ok {
			a.ok, a.app = true, name
		} else if err == nil {
			a.err = fmt.Sprintf("greeting %q", line)
		}
	}
	if err != nil {
		a.err = err.Error()
	}
	a.end = time.Now()
	return a
}

// close stops the prober and waits for the attempts in flight.
func (p *prober) close() {
	close(p.stop)
	p.done.Wait()
}

// since returns the attempts started at or after t0.
func (p *prober) since(t0 time.Time) []attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []attempt
	for _, a := range p.attempts {
		if !a.start.Before(t0) {
			out = append(out, a)
		}
	}
	return out
}

// outage measures from t0 to the end of the first successful attempt
// started after the first failed one (the victim answered until then),
// with the count of failed attempts before that success. done is false
// while the outage has not ended yet; with no failure at all the outage is
// zero once settle has passed since t0 with successes.
func outage(as []attempt, t0 time.Time, settle time.Duration) (gap time.Duration, failed int, done bool) {
	slices.SortFunc(as, func(x, y attempt) int { return x.start.Compare(y.start) })
	var firstFail time.Time
	for _, a := range as {
		if !a.ok {
			firstFail = a.start
			break
		}
	}
	if firstFail.IsZero() {
		return 0, 0, time.Since(t0) > settle && len(as) > 0
	}
	var end time.Time
	for _, a := range as {
		if a.ok && !a.start.Before(firstFail) && (end.IsZero() || a.end.Before(end)) {
			end = a.end
		}
	}
	if end.IsZero() {
		return 0, 0, false
	}
	for _, a := range as {
		if !a.ok && a.start.Before(end) {
			failed++
		}
	}
	return end.Sub(t0), failed, true
}

// failures counts failed attempts.
func failures(as []attempt) int {
	n := 0
	for _, a := range as {
		if !a.ok {
			n++
		}
	}
	return n
}
