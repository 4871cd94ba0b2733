//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// app is an application instance on a target node: it greets each
// connection with the node's name, so a client of the VIPA sees where it
// landed.
type app struct {
	ln net.Listener
	wg sync.WaitGroup
}

func listenApp(addr, node string) (*app, error) {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("application listen %s: %w", addr, err)
	}
	a := &app{ln: ln}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(c, "hello from "+node+"\n")
			c.Close()
		}
	}()
	return a, nil
}

// close stops listening: the socket leaves the kernel's LISTEN table at once.
func (a *app) close() {
	a.ln.Close()
	a.wg.Wait()
}

// greet connects through the VIPA and returns the name of the node whose
// application answered.
func greet(vipa string) (string, error) {
	c, err := net.DialTimeout("tcp4", vipa, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no greeting through %s: %w", vipa, err)
	}
	name, ok := strings.CutPrefix(strings.TrimSpace(line), "hello from ")
	if !ok {
		return "", fmt.Errorf("unexpected greeting %q through %s", line, vipa)
	}
	return name, nil
}
