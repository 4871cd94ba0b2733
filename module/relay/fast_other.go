//go:build !linux

package relay

import "net"

// fastRelay: no kernel fast path on this platform.
func fastRelay(client, target net.Conn, o *Options) runner { return nil }
