package tables

import (
	"strings"
	"testing"
	"time"
)

// Now's wall clock is time.Now's, and it carries a monotonic reading:
// durations between it and time.Now are measured on the monotonic clock.
func TestNow(t *testing.T) {
	before := time.Now()
	n := Now()
	after := time.Now()
	if n.Before(before) || n.After(after) {
		t.Fatalf("Now() = %v, not between %v and %v", n, before, after)
	}
	if !strings.Contains(n.String(), " m=+") {
		t.Fatalf("Now() = %v has no monotonic reading", n)
	}
	if w := n.UnixNano() - before.UnixNano(); w < 0 || w > int64(after.Sub(before))+int64(time.Millisecond) {
		t.Fatalf("Now()'s wall clock is %d ns after time.Now's", w)
	}
}

// An anchor older than reanchor is replaced by a fresh time.Now reading.
func TestNowReanchors(t *testing.T) {
	old := time.Now().Add(-2 * reanchor)
	wallAnchor.Store(&old)
	n := Now()
	if a := wallAnchor.Load(); a == &old || a.Before(n.Add(-time.Millisecond)) {
		t.Fatalf("anchor %v not renewed by Now() = %v", *a, n)
	}
	if d := time.Since(n); d < 0 || d > time.Minute {
		t.Fatalf("Now() = %v is %v from time.Now", n, d)
	}
}
