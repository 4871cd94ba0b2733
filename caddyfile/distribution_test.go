package caddyfile

import (
	"strconv"
	"strings"
	"testing"
)

// stmt is a Caddyfile whose vipadistribute statement starts on line 3
// with head and carries body, one line each from line 4.
func stmt(head string, body ...string) string {
	s := "{\n\tvipadynamic {\n\t\tvipadistribute 127.0.0.100 " + head
	if len(body) > 0 {
		s += " {\n\t\t\t" + strings.Join(body, "\n\t\t\t") + "\n\t\t}"
	}
	return s + "\n\t}\n}"
}

// TestDistributionErrors: each wrong use of the Distribution options is
// refused with the line that holds it.
func TestDistributionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, msg string
		line            int
	}{
		{"weight 0", stmt("port 80", "destip caddy-a weight 0"), "vipadistribute 127.0.0.100: destip caddy-a: weight 0: want 1-100", 4},
		{"weight 101", stmt("port 80", "destip caddy-b", "destip caddy-a weight 101"), "destip caddy-a: weight 101: want 1-100", 5},
		{"weight not a number", stmt("port 80", "destip caddy-a weight heavy"), `destip caddy-a: weight "heavy": want 1-100`, 4},
		{"weight without value", stmt("port 80", "destip caddy-a weight"), "wrong argument count", 4},
		{"weight twice", stmt("port 80", "destip caddy-a weight 2 weight 3"), "destip caddy-a: duplicate weight", 4},
		{"backup 0", stmt("port 80", "distmethod hotstandby", "destip caddy-a preferred", "destip caddy-b backup 0"), "destip caddy-b: rank 0: want 1-254", 6},
		{"backup 255", stmt("port 80", "distmethod hotstandby", "destip caddy-a preferred", "destip caddy-b backup 255"), "destip caddy-b: rank 255: want 1-254", 6},
		{"backup without rank", stmt("port 80", "distmethod hotstandby", "destip caddy-a preferred", "destip caddy-b backup"), "wrong argument count", 6},
		{"preferred and backup", stmt("port 80", "distmethod hotstandby", "destip caddy-a preferred backup 3"), "destip caddy-a: one of preferred or backup", 5},
		{"hotstandby without preferred", stmt("port 80", "distmethod hotstandby", "destip caddy-a backup 2", "destip caddy-b backup 1"),
			"hotstandby needs exactly one preferred destination, not 0", 4},
		{"hotstandby with two preferred", stmt("port 80", "destip caddy-a preferred", "destip caddy-b backup 9", "destip caddy-c preferred", "distmethod hotstandby"),
			"hotstandby needs exactly one preferred destination, not 2", 6},
		{"hotstandby with a bare destination", stmt("port 80", "distmethod hotstandby", "destip caddy-a preferred", "destip caddy-b"),
			"destip caddy-b: hotstandby needs preferred or backup", 6},
		{"hotstandby with destip all", stmt("port 80 destip all", "distmethod hotstandby"), "hotstandby refuses destip all", 3},
		{"preferred without hotstandby", stmt("port 80", "destip caddy-a preferred", "destip caddy-b"), "destip caddy-a: preferred needs distmethod hotstandby", 4},
		{"backup under leastconn", stmt("port 80", "destip caddy-a", "destip caddy-b backup 5", "distmethod leastconn"), "destip caddy-b: backup needs distmethod hotstandby", 5},
		{"all with weight", stmt("port 80", "destip all weight 2"), "destip all takes no weight, preferred or backup", 4},
		{"all preferred", stmt("port 80", "distmethod hotstandby", "destip all preferred"), "destip all takes no weight, preferred or backup", 5},
		{"all and a node", stmt("port 80 destip all", "destip caddy-b"), "destip all excludes other destinations", 4},
		{"destination twice", stmt("port 80", "destip caddy-a weight 2", "destip caddy-b", "destip caddy-a"), "destip caddy-a is listed twice", 6},
		{"destination inline and in the block", stmt("port 80 destip caddy-a caddy-b", "destip caddy-b weight 3"), "destip caddy-b is listed twice", 4},
		{"options on a list", stmt("port 80", "destip caddy-a caddy-b weight 2"), "'weight' follows exactly one node or address", 4},
		{"node after options", stmt("port 80", "destip caddy-a weight 2 caddy-b"), "'caddy-b' after options", 4},
		{"option before the node", stmt("port 80", "destip preferred caddy-a"), "'preferred' follows exactly one node or address", 4},
		{"bad node", stmt("port 80", "destip caddy_a! weight 2"), `node name "caddy_a!"`, 4},
		{"weight under targetweight", stmt("port 80", "distmethod targetweight", "destip caddy-a", "destip caddy-b weight 3"),
			"destip caddy-b: weight 3: targetweight uses the weight each target reports", 6},
		{"unknown option", stmt("port 80 destip all", "stickiness 60s"), "unknown vipadistribute option 'stickiness'", 4},
		{"bad timedaffinity", stmt("port 80 destip all", "timedaffinity forever"), "vipadistribute 127.0.0.100: invalid timedaffinity 'forever': want a duration", 4},
		{"zero timedaffinity", stmt("port 80 destip all", "timedaffinity 0s"), "timedaffinity 0s: want a positive duration", 4},
		{"negative slow_start", stmt("port 80 destip all", "slow_start -5s"), "slow_start -5s: want a positive duration", 4},
		{"bad slow_start", stmt("port 80 destip all", "slow_start 10"), "invalid slow_start '10'", 4},
		{"timedaffinity twice", stmt("port 80 destip all", "timedaffinity 5s", "timedaffinity 6s"), "duplicate vipadistribute option 'timedaffinity'", 5},
		{"max_conns 0", stmt("port 80 destip all", "max_conns 0"), "max_conns 0: want 1 or more", 4},
		{"negative max_conns", stmt("port 80 destip all", "max_conns -3"), "max_conns -3: want 1 or more", 4},
		{"max_conns not a number", stmt("port 80 destip all", "max_conns lots"), "invalid max_conns 'lots': want a number", 4},
		{"max_conns without value", stmt("port 80 destip all", "max_conns"), "wrong argument count", 4},
		{"optlocal with a value", stmt("port 80 destip all", "optlocal on"), "wrong argument count", 4},
		{"optlocal under hotstandby", stmt("port 80", "optlocal", "destip caddy-a preferred", "destip caddy-b backup 9", "distmethod hotstandby"),
			"vipadistribute 127.0.0.100: optlocal does not apply to hotstandby", 4},
		{"optlocal twice", stmt("port 80 destip all", "optlocal", "optlocal"), "duplicate vipadistribute option 'optlocal'", 5},
		{"distmethod twice", stmt("port 80 destip all distmethod leastconn", "distmethod roundrobin"), "duplicate vipadistribute option 'distmethod'", 4},
		{"block on another option", stmt("port 80 destip all", "max_conns 5 {", "\tautoswitchback on", "}"), "vipadistribute option 'max_conns' takes no block", 5},
		{"switches without hotstandby", stmt("port 80 destip all", "distmethod roundrobin {", "\tautoswitchback off", "}"),
			"hotstandby options need distmethod hotstandby, not roundrobin", 5},
		{"switch not on or off", stmt("port 80", "distmethod hotstandby {", "\tautoswitchback maybe", "}", "destip caddy-a preferred"), `autoswitchback "maybe": want on or off`, 5},
		{"switch without value", stmt("port 80", "distmethod hotstandby {", "\thealthswitch", "}", "destip caddy-a preferred"), "wrong argument count", 5},
		{"unknown switch", stmt("port 80", "distmethod hotstandby {", "\tfailback on", "}", "destip caddy-a preferred"), "unknown hotstandby option 'failback'", 5},
		{"switch twice", stmt("port 80", "distmethod hotstandby {", "\thealthswitch on", "\thealthswitch off", "}", "destip caddy-a preferred"),
			"duplicate hotstandby option 'healthswitch'", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := adapt(t, tc.body)
			if err == nil {
				t.Fatalf("adapted without error; want %q\n%s", tc.msg, tc.body)
			}
			at := "at Caddyfile:" + strconv.Itoa(tc.line)
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasSuffix(err.Error(), at) {
				t.Fatalf("error %q\nwant %q %s", err, tc.msg, at)
			}
		})
	}
}

// TestDistributionForms: each form of the Distribution grammar adapts.
func TestDistributionForms(t *testing.T) {
	for _, body := range []string{
		stmt("port 80 destip all", "timedaffinity 1h", "optlocal", "max_conns 1", "slow_start 500ms"),
		stmt("port 80 destip caddy-a caddy-b", "destip caddy-c weight 100", "destip 127.0.0.9 weight 1"),
		stmt("port 80 destip caddy-a weight 3 distmethod leastconn"),
		stmt("port 80", "destip caddy-c backup 254", "destip caddy-a preferred", "destip caddy-b backup 1", "distmethod hotstandby {", "}"),
		stmt("port 80", "distmethod hotstandby {", "\tautoswitchback on", "\thealthswitch off", "}", "destip caddy-a preferred"),
		stmt("port 80 destip all", "distmethod targetweight"),
	} {
		if err := adapt(t, body); err != nil {
			t.Errorf("%v\n%s", err, body)
		}
	}
}
