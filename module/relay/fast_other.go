//go:build !linux

package relay

import "net"

// joinFast has no kernel fast path on this platform.
func joinFast(client, target net.Conn, o Options) (bool, error) { return false, nil }
