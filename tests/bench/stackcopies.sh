#!/usr/bin/env bash
# stackcopies.sh counts how often Caddy copies a goroutine stack per goroutine
# it starts, while the bench's connection-rate case runs through the
# distribute handler. caddy-l4 grows each handler goroutine's stack once
# (2 -> 4 KiB); a figure near 2.0 instead of ~1.1 means the handler's dial or
# start grew it a second time.
#
# Needs Linux, perf and the right to add uprobes (root). Bounded: one 8 s
# run, counted over 2 s of it.
#
#   tests/bench/stackcopies.sh            # builds ./cmd/caddy and the bench
#   CADDY=/path/to/caddy tests/bench/stackcopies.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
bench_pid=
cleanup() {
	perf probe -q -d 'probe_stackcopies:*' >/dev/null 2>&1 || true
	if [ -n "$bench_pid" ]; then kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

caddy=${CADDY:-$work/caddy}
[ -n "${CADDY:-}" ] || go build -o "$caddy" ./cmd/caddy
go build -o "$work/bench" ./tests/bench

perf probe -q -d 'probe_stackcopies:*' >/dev/null 2>&1 || true
perf probe -q -x "$caddy" -a 'probe_stackcopies:copystack=runtime.copystack'
perf probe -q -x "$caddy" -a 'probe_stackcopies:newproc=runtime.newproc1'

"$work/bench" -caddy "$caddy" -cases connrate -contenders distribute -rounds 1 -duration 8s >"$work/bench.out" 2>&1 &
bench_pid=$!

pid=
for _ in $(seq 50); do
	pid=$(pgrep -f -n "^$caddy run" || true)
	[ -n "$pid" ] && break
	sleep 0.2
done
if [ -z "$pid" ]; then
	echo "stackcopies: Caddy did not start; bench output:" >&2
	cat "$work/bench.out" >&2
	exit 1
fi
sleep 4 # Caddy comes up and the listener watch fills the DPT; then the case runs 8 s
perf stat -x, -e probe_stackcopies:copystack,probe_stackcopies:newproc -p "$pid" -- sleep 2 2>"$work/stat" >/dev/null
wait "$bench_pid" || true
bench_pid=

awk -F, '/copystack/ {c = $1} /newproc/ {n = $1}
	END {
		if (n == 0) { print "stackcopies: no goroutine started while counting" > "/dev/stderr"; exit 1 }
		printf "%d stack copies, %d goroutines started: %.2f copies per goroutine\n", c, n, c / n
	}' "$work/stat"
