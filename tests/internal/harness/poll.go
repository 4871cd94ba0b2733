//go:build linux

package harness

import (
	"context"
	"fmt"
	"time"
)

// Poll calls cond every interval until it holds, and returns when it did.
// Errors from cond are retried: a node may be restarting. The last error or
// a description of the last state goes into the timeout error.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, string, error)) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state, err := cond()
		now := time.Now()
		if err == nil && ok {
			return now, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = state
		}
		if now.After(deadline) {
			return now, fmt.Errorf("%s: not after %s (last: %s)", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-time.After(interval):
		}
	}
}
