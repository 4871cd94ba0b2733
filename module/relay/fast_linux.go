package relay

import "net"

func joinFast(client, target net.Conn, o Options) (bool, error) { return false, nil }
