package vipa

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateDestIP(t *testing.T) {
	many := make([]string, MaxDestinations+1)
	for i := range many {
		many[i] = "n" + strings.Repeat("x", i%50)
	}
	for _, tc := range []struct {
		name string
		in   []string
		err  string
	}{
		{"all", []string{"all"}, ""},
		{"names", []string{"caddy-b", "caddy-c"}, ""},
		{"addresses", []string{"10.0.0.12", "2001:db8::2"}, ""},
		{"mixed", []string{"caddy-b", "10.0.0.12"}, ""},
		{"at the bound", many[:MaxDestinations], ""},
		{"empty", nil, "empty destip list"},
		{"all with others", []string{"all", "caddy-b"}, "destip all excludes other destinations"},
		{"others with all", []string{"caddy-b", "all"}, "destip all excludes other destinations"},
		{"300-character name", []string{strings.Repeat("a", 300)}, "destip: node name is 300 characters: at most 128"},
		{"name with a space", []string{"caddy b"}, `destip: node name "caddy b"`},
		{"wildcard address", []string{"0.0.0.0"}, `destip "0.0.0.0": want a unicast address`},
		{"empty name", []string{""}, "destip: node name is empty"},
		{"too many", many, "1025 destinations: at most 1024"},
	} {
		err := ValidateDestIP(tc.in)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: ValidateDestIP = %v; want %q", tc.name, err, tc.err)
		}
	}
}

func TestValidateDestinations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		dests  []Destination
		err    string
	}{
		{"weights", WeightedActive, []Destination{{Node: "a", Weight: 3}, {Node: "b"}, {Node: "c", Weight: 2}}, ""},
		{"weight bounds", RoundRobin, []Destination{{Node: "a", Weight: 1}, {Node: "b", Weight: 100}}, ""},
		{"all bare", RoundRobin, []Destination{{Node: "all"}}, ""},
		{"hotstandby", HotStandby, []Destination{{Node: "a", Role: RolePreferred}, {Node: "b", Role: RoleBackup, Rank: 100}, {Node: "c", Role: RoleBackup, Rank: 50}}, ""},
		{"negative weight", RoundRobin, []Destination{{Node: "a", Weight: -1}}, "destip a: weight -1: want 1-100"},
		{"weight 101", RoundRobin, []Destination{{Node: "a", Weight: 101}}, "weight 101: want 1-100"},
		{"all with weight", RoundRobin, []Destination{{Node: "all", Weight: 2}}, "destip all takes no weight, preferred or backup"},
		{"all preferred", HotStandby, []Destination{{Node: "all", Role: RolePreferred}}, "destip all takes no weight"},
		{"hotstandby all", HotStandby, []Destination{{Node: "all"}}, "hotstandby refuses destip all"},
		{"two preferred", HotStandby, []Destination{{Node: "a", Role: RolePreferred}, {Node: "b", Role: RolePreferred}}, "exactly one preferred destination, not 2"},
		{"no preferred", HotStandby, []Destination{{Node: "b", Role: RoleBackup, Rank: 1}}, "exactly one preferred destination, not 0"},
		{"hotstandby without role", HotStandby, []Destination{{Node: "a", Role: RolePreferred}, {Node: "b"}}, "destip b: hotstandby needs preferred or backup"},
		{"role without hotstandby", RoundRobin, []Destination{{Node: "a", Role: RolePreferred}}, "destip a: preferred needs distmethod hotstandby"},
		{"rank 0", HotStandby, []Destination{{Node: "a", Role: RolePreferred}, {Node: "b", Role: RoleBackup}}, "destip b: rank 0: want 1-254"},
		{"rank 255", HotStandby, []Destination{{Node: "a", Role: RolePreferred}, {Node: "b", Role: RoleBackup, Rank: 255}}, "rank 255: want 1-254"},
		{"rank on preferred", HotStandby, []Destination{{Node: "a", Role: RolePreferred, Rank: 3}}, "only a backup has a rank"},
		{"unknown role", HotStandby, []Destination{{Node: "a", Role: "primary"}}, `unknown role "primary"`},
		{"twice", RoundRobin, []Destination{{Node: "a"}, {Node: "a", Weight: 2}}, "destip a is listed twice"},
		{"all with others", RoundRobin, []Destination{{Node: "all"}, {Node: "a"}}, "destip all excludes other destinations"},
		{"bad name", RoundRobin, []Destination{{Node: "a b"}}, `node name "a b"`},
		{"none", RoundRobin, nil, "empty destip list"},
		{"targetweight with a weight", TargetWeight, []Destination{{Node: "a"}, {Node: "b", Weight: 3}}, "destip b: weight 3: targetweight uses the weight each target reports"},
		{"targetweight", TargetWeight, []Destination{{Node: "a"}, {Node: "b", Weight: 1}}, ""},
	} {
		err := ValidateDestinations(tc.method, tc.dests)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: ValidateDestinations = %v; want %q", tc.name, err, tc.err)
		}
	}
}

// TestDestinationErrorIndex: a problem of one destination names its index,
// so a config can point at its line.
func TestDestinationErrorIndex(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		dests  []Destination
		index  int // -1: the list as a whole
	}{
		{"second twice", RoundRobin, []Destination{{Node: "a"}, {Node: "b"}, {Node: "a"}}, 2},
		{"all after a node", RoundRobin, []Destination{{Node: "a"}, {Node: "all"}}, 1},
		{"node after all", RoundRobin, []Destination{{Node: "all"}, {Node: "a"}}, 1},
		{"second preferred", HotStandby, []Destination{{Node: "a", Role: RolePreferred}, {Node: "b", Role: RoleBackup, Rank: 1}, {Node: "c", Role: RolePreferred}}, 2},
		{"role under leastconn", LeastConn, []Destination{{Node: "a"}, {Node: "b", Role: RoleBackup, Rank: 1}}, 1},
		{"weight", RoundRobin, []Destination{{Node: "a"}, {Node: "b", Weight: 101}}, 1},
		{"no preferred", HotStandby, []Destination{{Node: "a", Role: RoleBackup, Rank: 1}}, -1},
	} {
		err := ValidateDestinations(tc.method, tc.dests)
		var de *DestinationError
		switch {
		case err == nil:
			t.Errorf("%s: no error", tc.name)
		case tc.index < 0 && errors.As(err, &de):
			t.Errorf("%s: %v at index %d, want the whole list", tc.name, err, de.Index)
		case tc.index >= 0 && (!errors.As(err, &de) || de.Index != tc.index):
			t.Errorf("%s: %v (%#v), want index %d", tc.name, err, de, tc.index)
		}
	}
}

func TestParseWeightRank(t *testing.T) {
	for _, tc := range []struct {
		in   string
		rank bool
		want int
		err  string
	}{
		{"1", false, 1, ""}, {"100", false, 100, ""}, {"0", false, 0, "weight 0: want 1-100"},
		{"101", false, 0, "weight 101: want 1-100"}, {"3.5", false, 0, `weight "3.5": want 1-100`},
		{"1", true, 1, ""}, {"254", true, 254, ""}, {"0", true, 0, "rank 0: want 1-254"},
		{"255", true, 0, "rank 255: want 1-254"}, {"high", true, 0, `rank "high": want 1-254`},
	} {
		parse := ParseWeight
		if tc.rank {
			parse = ParseRank
		}
		got, err := parse(tc.in)
		if (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err || err == nil && got != tc.want {
			t.Errorf("parse(%q, rank %v) = %d, %v; want %d, %q", tc.in, tc.rank, got, err, tc.want, tc.err)
		}
	}
}
