//go:build !linux

package listenwatch

import (
	"errors"
	"fmt"
	"runtime"
)

// SocketTable reports whether this system's socket table can be read; where
// it cannot, a Watcher finds listeners only by probing.
const SocketTable = false

var errUnsupported = fmt.Errorf("listenwatch: reading listening sockets on %s: %w", runtime.GOOS, errors.ErrUnsupported)

type scanner struct{}

func newScanner() (*scanner, error) { return nil, errUnsupported }

func (*scanner) scan(Snapshot) error { return errUnsupported }

func (*scanner) scanTable(table) error { return errUnsupported }

func (*scanner) close() {}
