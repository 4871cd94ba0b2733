//go:build linux

package main

import (
	"io"
	"net"
	"sync"
)

// app is an application instance: it greets each connection with its name
// and closes it.
type app struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup
}

func startApp(name string, ln net.Listener) *app {
	a := &app{name: name, ln: ln}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				_, _ = io.WriteString(c, "hello from "+a.name+"\n")
				c.Close()
			}()
		}
	}()
	return a
}

func (a *app) stop() {
	a.ln.Close()
	a.wg.Wait()
}
