//go:build !linux

package module

import (
	"errors"
	"net"
	"net/netip"
)

// shadowSupported: only Linux lists a process's sockets for the shadow
// loops to find.
const shadowSupported = false

func openSockets() (socketSet, error) { return nil, nil }

func findListener(netip.AddrPort, socketSet) (*shadowListener, error) {
	return nil, errors.New("shadow accept loops run on Linux only")
}

func releaseSocket(uint64) {}

func refuseQueued(*shadowListener) (int, bool) { return 0, false }

func awaitQueued(*shadowListener) error { return errors.ErrUnsupported }

func acceptTurn(*shadowListener) (net.Conn, bool, error) { return nil, false, errors.ErrUnsupported }
