// Command gorelay is the distribute handler's relay behind a plain Go
// accept loop: no Caddy, no caddy-l4, no DPT. The bench runs it beside
// distribute to show what Go's runtime and accept path cost apart from
// the plugin and its host. With -copy it relays the idiomatic Go way
// instead (net.Dial, then a goroutine per direction reading and writing
// through a buffer): what a Go proxy without this relay costs.
//
//	gorelay -listen 127.0.0.1:9000 -backend 127.0.0.2:9001 [-copy]
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/caddy-vipa/caddy-vipa/module/relay"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept on")
	backend := flag.String("backend", "", "target address, ip:port")
	copyMode := flag.Bool("copy", false, "relay with a goroutine per direction instead of the relay package")
	flag.Parse()
	target, err := netip.ParseAddrPort(*backend)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorelay: -backend:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorelay:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "gorelay:", err)
			os.Exit(1)
		}
		if *copyMode {
			go serveCopy(c, target)
		} else {
			go serve(c, target)
		}
	}
}

// serve does what the distribute handler does once it has chosen a target.
func serve(c net.Conn, target netip.AddrPort) {
	t, err := relay.Dial(c, target, 3*time.Second)
	if err != nil {
		c.Close()
		return
	}
	relay.Start(c, t, nil, relay.Options{}, func(error) {})
}

// serveCopy relays as a plain Go proxy does: each direction is a
// goroutine blocked in Read, and a FIN is passed on with CloseWrite.
func serveCopy(c net.Conn, target netip.AddrPort) {
	t, err := net.DialTimeout("tcp", target.String(), 3*time.Second)
	if err != nil {
		c.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		copyHalf(t, c)
		close(done)
	}()
	copyHalf(c, t)
	<-done
	c.Close()
	t.Close()
}

// copyHalf copies src to dst until EOF or an error, then closes dst's
// write half. A buffer copy, not io.Copy: between two TCP sockets io.Copy
// splices through a pipe, which costs small messages two more calls.
func copyHalf(dst, src net.Conn) {
	buf := make([]byte, 8192)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.(*net.TCPConn).CloseWrite()
}
