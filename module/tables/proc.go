package tables

import _ "unsafe" // go:linkname

// proc is the number of the processor (P) running the caller, below
// GOMAXPROCS; the goroutine may move to another one right after. A
// connection's counts go to its processor's stripe and its CRT entry to
// one of its processor's home shards: the processors of two cores never
// share a stripe (with at most 16 of them) or a home shard.
func proc() int {
	p := procPin()
	procUnpin()
	return p
}

// procPin and procUnpin are the runtime's, which keeps them for linkname
// (go.dev/issue/67401); sync.Pool is built on them.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()
