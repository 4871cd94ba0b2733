//go:build linux

package vipaif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// Manager adds, announces and removes the VIPAs this node owns on one
// interface. Own and Release are idempotent and safe for concurrent use.
type Manager struct {
	name string

	mu sync.Mutex
	// owned: VIPAs Own was called for and Release was not, with the
	// announcement still repeating (nil once it is done).
	owned map[netip.Addr]*announcer
	// added: addresses this process added, for kernels that do not keep
	// IFA_PROTO (before 6.1), where the mark cannot be read back.
	added map[netip.Addr]bool
}

// New manages VIPAs on the named interface, which must exist now.
func New(name string) (*Manager, error) {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil, fmt.Errorf("vipa_interface %s: %w", name, err)
	}
	return &Manager{name: name, owned: map[netip.Addr]*announcer{}, added: map[netip.Addr]bool{}}, nil
}

// Interface is the managed interface's name.
func (m *Manager) Interface() string { return m.name }

// Own puts vipa on the interface (unless it is there already, added by the
// user or by an earlier process) and announces it: once before returning,
// then Announcements-1 more times, Interval apart, in the background. Own
// of an owned VIPA announces it again.
func (m *Manager) Own(vipa netip.Addr) error {
	vipa, err := check(vipa)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ifi, err := net.InterfaceByName(m.name)
	if err != nil {
		return fmt.Errorf("vipa_interface %s: %w", m.name, err)
	}
	cur, err := findAddr(ifi.Index, vipa)
	if err != nil {
		return fmt.Errorf("vipa_interface %s: list addresses: %w", m.name, err)
	}
	if !cur.present {
		if err := addAddr(ifi.Index, vipa); err != nil && !errors.Is(err, errExists) {
			return fmt.Errorf("vipa_interface %s: add %s: %w", m.name, prefix(vipa), err)
		}
		m.added[vipa] = true
	}
	if a := m.owned[vipa]; a != nil {
		a.halt()
	}
	m.owned[vipa] = nil
	a, err := announce(ifi, vipa)
	if err != nil {
		return fmt.Errorf("vipa_interface %s: announce %s: %w", m.name, vipa, err)
	}
	m.owned[vipa] = a
	return nil
}

// Release stops announcing vipa and removes it from the interface if this
// package added it; an address the user configured stays.
func (m *Manager) Release(vipa netip.Addr) error {
	vipa, err := check(vipa)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.release(vipa)
}

func (m *Manager) release(vipa netip.Addr) error {
	if a := m.owned[vipa]; a != nil {
		a.halt()
	}
	delete(m.owned, vipa)
	ifi, err := net.InterfaceByName(m.name)
	if err != nil {
		return fmt.Errorf("vipa_interface %s: %w", m.name, err)
	}
	cur, err := findAddr(ifi.Index, vipa)
	if err != nil {
		return fmt.Errorf("vipa_interface %s: list addresses: %w", m.name, err)
	}
	if !cur.present || (cur.proto != Proto && !m.added[vipa]) {
		return nil
	}
	if err := delAddr(ifi.Index, vipa, cur.bits); err != nil && !errors.Is(err, errGone) {
		return fmt.Errorf("vipa_interface %s: remove %s: %w", m.name, prefix(vipa), err)
	}
	delete(m.added, vipa)
	return nil
}

// Quiet stops announcing vipa and keeps its address: a node handing the
// VIPA over routes it until the successor has claimed it, but its repeats
// must not move clients back after the successor's announcement. Own
// announces it again.
func (m *Manager) Quiet(vipa netip.Addr) {
	vipa, err := check(vipa)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.owned[vipa]; ok && a != nil {
		a.halt()
		m.owned[vipa] = nil
	}
}

// Owned lists the VIPAs owned through this manager, sorted.
func (m *Manager) Owned() []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]netip.Addr, 0, len(m.owned))
	for v := range m.owned {
		out = append(out, v)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Close releases every owned VIPA: a stopping node leaves no address
// behind to answer for a VIPA another node now owns.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for v := range m.owned {
		errs = append(errs, m.release(v))
	}
	return errors.Join(errs...)
}

// check accepts one unicast address; IPv4-mapped IPv6 means IPv4.
func check(vipa netip.Addr) (netip.Addr, error) {
	vipa = vipa.Unmap().WithZone("")
	if !vipa.IsValid() || vipa.IsUnspecified() || vipa.IsMulticast() || vipa.IsLoopback() && vipa.Is6() {
		return vipa, fmt.Errorf("vipa_interface: %v is not a VIPA address", vipa)
	}
	return vipa, nil
}

// prefix is the host prefix a VIPA is added as: /32 or /128.
func prefix(vipa netip.Addr) netip.Prefix {
	return netip.PrefixFrom(vipa, vipa.BitLen())
}
