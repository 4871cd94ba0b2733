//go:build !linux

package main

import "syscall"

// childAttr: without Pdeathsig, Ctrl-C still stops every node.
func childAttr() *syscall.SysProcAttr { return nil }
