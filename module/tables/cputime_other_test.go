//go:build !unix

package tables

func cpuTime() int64 { return -1 }
