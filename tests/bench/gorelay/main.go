// Command gorelay is the distribute handler's relay behind a plain Go
// accept loop: no Caddy, no caddy-l4, no DPT. The bench runs it beside
// distribute to show what Go's runtime and accept path cost apart from
// the plugin and its host.
//
//	gorelay -listen 127.0.0.1:9000 -backend 127.0.0.2:9001
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
		go serve(c, target)
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
