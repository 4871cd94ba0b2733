package vipa

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// DestAll is the destip value that makes every fleet node a candidate
// (claim 2); it stands alone.
const DestAll = "all"

// MaxDestinations bounds the destip list of one definition: the fleet's
// wire carries no more.
const MaxDestinations = 1024

// ValidateDestIP checks a destip list: DestAll alone, or node names and
// advertise addresses (claim 3).
func ValidateDestIP(list []string) error {
	if len(list) == 0 {
		return errors.New("empty destip list")
	}
	if len(list) > MaxDestinations {
		return fmt.Errorf("%d destinations: at most %d", len(list), MaxDestinations)
	}
	for _, dst := range list {
		if dst == DestAll {
			if len(list) > 1 {
				return errors.New("destip all excludes other destinations")
			}
			continue
		}
		if err := validateDest(dst); err != nil {
			return err
		}
	}
	return nil
}

// validateDest checks one destination: an advertise address or a node name.
func validateDest(dst string) error {
	if _, err := netip.ParseAddr(dst); err == nil {
		if _, err := ParseAdvertise(dst); err != nil {
			return fmt.Errorf("destip %q: want a unicast address", dst)
		}
		return nil
	}
	if err := ValidateNodeName(dst); err != nil {
		return fmt.Errorf("destip: %w", err)
	}
	return nil
}

// Role of a destination in a hotstandby definition.
type Role string

// Roles a destination may have.
const (
	RoleNone      Role = ""
	RolePreferred Role = "preferred"
	RoleBackup    Role = "backup"
)

// Bounds of a destination's weight and backup rank.
const (
	MinWeight = 1
	MaxWeight = 100
	MinRank   = 1
	MaxRank   = 254
)

// Destination is one destip line of the block form: a node or address,
// its weight and, under hotstandby, its role and backup rank.
type Destination struct {
	Node   string `json:"node"`
	Weight int    `json:"weight,omitempty"` // 0 means 1
	Role   Role   `json:"role,omitempty"`
	Rank   int    `json:"rank,omitempty"` // backups only
}

// ValidateWeight checks a configured or reported weight.
func ValidateWeight(w int) error {
	if w < MinWeight || w > MaxWeight {
		return fmt.Errorf("weight %d: want %d-%d", w, MinWeight, MaxWeight)
	}
	return nil
}

// ValidateRank checks a backup rank (of a destination or a backup routing
// node).
func ValidateRank(r int) error {
	if r < MinRank || r > MaxRank {
		return fmt.Errorf("rank %d: want %d-%d", r, MinRank, MaxRank)
	}
	return nil
}

// ParseWeight reads a destination's weight as a config writes it.
func ParseWeight(s string) (int, error) {
	w, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("weight %q: want %d-%d", s, MinWeight, MaxWeight)
	}
	return w, ValidateWeight(w)
}

// ParseRank reads a backup rank as a config writes it.
func ParseRank(s string) (int, error) {
	r, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("rank %q: want %d-%d", s, MinRank, MaxRank)
	}
	return r, ValidateRank(r)
}

// Validate checks one destination on its own: DestAll bare, a node or
// address, weight and rank in range, a rank only on a backup.
func (d Destination) Validate() error {
	if d.Node == DestAll {
		if d.Weight != 0 || d.Role != RoleNone || d.Rank != 0 {
			return errors.New("destip all takes no weight, preferred or backup")
		}
		return nil
	}
	if err := validateDest(d.Node); err != nil {
		return err
	}
	if d.Weight != 0 {
		if err := ValidateWeight(d.Weight); err != nil {
			return fmt.Errorf("destip %s: %w", d.Node, err)
		}
	}
	switch d.Role {
	case RoleNone, RolePreferred:
		if d.Rank != 0 {
			return fmt.Errorf("destip %s: only a backup has a rank", d.Node)
		}
	case RoleBackup:
		if err := ValidateRank(d.Rank); err != nil {
			return fmt.Errorf("destip %s: %w", d.Node, err)
		}
	default:
		return fmt.Errorf("destip %s: unknown role %q: want preferred or backup", d.Node, d.Role)
	}
	return nil
}

// DestinationError is what is wrong with one destination of a list: the
// one at Index.
type DestinationError struct {
	Index int
	Err   error
}

func (e *DestinationError) Error() string { return e.Err.Error() }
func (e *DestinationError) Unwrap() error { return e.Err }

// ValidateDestinations checks destinations for a distmethod: each one on
// its own, none twice, DestAll alone, roles only under hotstandby and
// there on every destination, exactly one preferred. A problem of one
// destination is a *DestinationError.
func ValidateDestinations(method string, dests []Destination) error {
	switch {
	case len(dests) == 0:
		return errors.New("empty destip list")
	case len(dests) > MaxDestinations:
		return fmt.Errorf("%d destinations: at most %d", len(dests), MaxDestinations)
	}
	seen := make(map[string]bool, len(dests))
	preferred, second := 0, -1
	for i, d := range dests {
		bad := func(err error) error { return &DestinationError{Index: i, Err: err} }
		if err := d.Validate(); err != nil {
			return bad(err)
		}
		switch {
		case seen[d.Node]:
			return bad(fmt.Errorf("destip %s is listed twice", d.Node))
		case i > 0 && (d.Node == DestAll || seen[DestAll]):
			return bad(errors.New("destip all excludes other destinations"))
		case method == HotStandby && d.Node == DestAll:
			return bad(errors.New("hotstandby refuses destip all"))
		case method == HotStandby && d.Role == RoleNone:
			return bad(fmt.Errorf("destip %s: hotstandby needs preferred or backup", d.Node))
		case method != HotStandby && d.Role != RoleNone:
			return bad(fmt.Errorf("destip %s: %s needs distmethod hotstandby", d.Node, d.Role))
		case method == TargetWeight && d.Weight > 1:
			// It would be ignored: the weight is the one the target reports.
			return bad(fmt.Errorf("destip %s: weight %d: targetweight uses the weight each target reports (weight in the target's vipadynamic block)", d.Node, d.Weight))
		}
		seen[d.Node] = true
		if d.Role == RolePreferred {
			if preferred++; preferred == 2 {
				second = i
			}
		}
	}
	if method == HotStandby && preferred != 1 {
		err := fmt.Errorf("hotstandby needs exactly one preferred destination, not %d", preferred)
		if second >= 0 {
			return &DestinationError{Index: second, Err: err}
		}
		return err
	}
	return nil
}
