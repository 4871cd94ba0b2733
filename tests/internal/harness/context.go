//go:build linux

package harness

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// RunContext is done on Ctrl-C, SIGTERM or when budget runs out. After
// that a second signal kills the command at once (children die with it
// through Pdeathsig), and a cleanup that hangs 20 s exits with status 3.
func RunContext(name string, budget time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, budget)
	go func() {
		<-ctx.Done()
		stop()
		time.Sleep(20 * time.Second)
		fmt.Fprintln(os.Stderr, name+": cleanup hangs, exiting")
		os.Exit(3)
	}()
	return ctx, func() { cancel(); stop() }
}
