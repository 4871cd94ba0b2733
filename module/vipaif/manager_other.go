//go:build !linux

package vipaif

import (
	"errors"
	"net/netip"
)

// ErrUnsupported: only Linux's addresses can be managed.
var ErrUnsupported = errors.New("vipa_interface: managing VIPA addresses is supported only on Linux")

// Manager is unavailable on this system.
type Manager struct{}

// New fails: addresses are the user's here.
func New(string) (*Manager, error) { return nil, ErrUnsupported }

// Own fails.
func (*Manager) Own(netip.Addr) error { return ErrUnsupported }

// Release fails.
func (*Manager) Release(netip.Addr) error { return ErrUnsupported }

// Quiet does nothing.
func (*Manager) Quiet(netip.Addr) {}

// Forward fails.
func (*Manager) Forward(netip.Addr, netip.Addr) error { return ErrUnsupported }

// Unforward does nothing.
func (*Manager) Unforward(netip.Addr) error { return nil }

// Owned is empty.
func (*Manager) Owned() []netip.Addr { return nil }

// Close does nothing.
func (*Manager) Close() error { return nil }
