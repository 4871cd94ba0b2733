//go:build linux

package main

import (
	"fmt"
	"io"
	"sync"
)

// Failure kinds. Either one makes the exit code non-zero.
const (
	kindData = "DATA MISMATCH" // bytes lost, altered, reordered or invented on the way
	kindConn = "FAILED"        // a connection or process failed, so a measurement is missing or partial
)

// printLimit bounds the lines printed per run label: a dead proxy fails every
// connection of a case, one line says as much as ten thousand.
const printLimit = 5

type failure struct {
	Label string `json:"label"`
	Kind  string `json:"kind"`
	Msg   string `json:"msg"`
}

// failures collects what went wrong, printing each as it happens. The label
// names the measurement running now; backends report into it too.
type failures struct {
	mu      sync.Mutex
	out     io.Writer
	label   string
	list    []failure
	printed map[string]int
}

func newFailures(out io.Writer) *failures {
	return &failures{out: out, label: "setup", printed: map[string]int{}}
}

func (f *failures) setLabel(l string) {
	f.mu.Lock()
	f.label = l
	f.mu.Unlock()
}

func (f *failures) data(format string, a ...any) { f.add(kindData, fmt.Sprintf(format, a...)) }
func (f *failures) conn(format string, a ...any) { f.add(kindConn, fmt.Sprintf(format, a...)) }

func (f *failures) add(kind, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, failure{Label: f.label, Kind: kind, Msg: msg})
	key := f.label + kind
	f.printed[key]++
	switch n := f.printed[key]; {
	case n <= printLimit:
		fmt.Fprintf(f.out, "*** %s [%s]: %s\n", kind, f.label, msg)
	case n == printLimit+1:
		fmt.Fprintf(f.out, "*** %s [%s]: more of these follow, not printed\n", kind, f.label)
	}
}

func (f *failures) all() []failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]failure(nil), f.list...)
}
