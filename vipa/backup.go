package vipa

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// DefaultMaxWait bounds how long a backup routing node under takeback
// when_idle keeps a VIPA its configured routing node wants back.
const DefaultMaxWait = 10 * time.Minute

// MaxBackups bounds the vipabackup statements of one node: each travels in
// the node's serf tags, whose 512 bytes the fleet shares with its digests.
const MaxBackups = 8

// maxInterfaceName is the kernel's IFNAMSIZ less the terminating NUL.
const maxInterfaceName = 15

// Backup is a VIPABACKUP statement: this node takes a VIPA over when its
// routing node is gone, ahead of backups of lower rank.
type Backup struct {
	VIPA     netip.Addr
	Rank     int           // 1-254, higher first
	Takeback string        // TakebackWhenIdle or TakebackImmediate
	MaxWait  time.Duration // under when_idle; 0 means DefaultMaxWait
}

// Validate checks a backup statement by itself.
func (b *Backup) Validate() error {
	if !unicast(b.VIPA) || b.VIPA.Zone() != "" {
		return fmt.Errorf("invalid VIPA %q: want a unicast IP address", b.VIPA)
	}
	if err := ValidateRank(b.Rank); err != nil {
		return fmt.Errorf("vipabackup %s: %w", b.VIPA, err)
	}
	if _, err := ParseTakeback(b.Takeback); err != nil {
		return fmt.Errorf("vipabackup %s: %w", b.VIPA, err)
	}
	if b.MaxWait < 0 {
		return fmt.Errorf("vipabackup %s: max_wait cannot be negative", b.VIPA)
	}
	if b.MaxWait > 0 && b.Takeback == TakebackImmediate {
		return fmt.Errorf("vipabackup %s: max_wait needs takeback when_idle", b.VIPA)
	}
	return nil
}

// ValidateBackups checks a node's backup statements together with the
// VIPAs it defines itself: a node cannot back up its own VIPA, nor one
// VIPA twice.
func ValidateBackups(backups []*Backup, defined []netip.Addr) error {
	if len(backups) > MaxBackups {
		return fmt.Errorf("%d vipabackup statements: at most %d", len(backups), MaxBackups)
	}
	seen := map[netip.Addr]bool{}
	for _, b := range backups {
		if err := b.Validate(); err != nil {
			return err
		}
		if err := BackupConflict(b.VIPA, seen, defined); err != nil {
			return err
		}
		seen[b.VIPA] = true
	}
	return nil
}

// BackupConflict says why v cannot be backed up here: already backed up
// (in backed) or defined by this node.
func BackupConflict(v netip.Addr, backed map[netip.Addr]bool, defined []netip.Addr) error {
	if backed[v] {
		return fmt.Errorf("vipabackup %s: VIPA already backed up by another vipabackup statement", v)
	}
	for _, d := range defined {
		if d == v {
			return fmt.Errorf("vipabackup %s: this node defines the VIPA (vipadistribute); a routing node cannot back up its own VIPA", v)
		}
	}
	return nil
}

// ValidateInterfaceName checks the syntax of a network interface name
// (vipa_interface); whether it exists is for the host to say.
func ValidateInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("vipa_interface: empty interface name")
	case len(name) > maxInterfaceName:
		return fmt.Errorf("vipa_interface %q: at most %d bytes", name, maxInterfaceName)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("vipa_interface %q: not an interface name", name)
	}
	return nil
}
