//go:build !linux

package relay

import "net"

// Splices reports whether Join relays client and target in the kernel; not
// on this platform.
func Splices(client, target net.Conn) bool { return false }

// fastRelay: no kernel fast path on this platform.
func fastRelay(client, target net.Conn, o *Options) runner { return nil }
