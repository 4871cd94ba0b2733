//go:build !linux

package listenwatch

import (
	"errors"
	"fmt"
	"runtime"
)

var errUnsupported = fmt.Errorf("listenwatch: reading listening sockets on %s: %w", runtime.GOOS, errors.ErrUnsupported)

type scanner struct{}

func newScanner() (*scanner, error) { return nil, errUnsupported }

func (*scanner) scan(Snapshot) error { return errUnsupported }

func (*scanner) close() {}
