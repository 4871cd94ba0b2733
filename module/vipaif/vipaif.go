// Package vipaif manages the addresses of the VIPAs a node owns on one
// network interface: Own adds a VIPA as a /32 or /128 and announces it
// (gratuitous ARP, unsolicited neighbour advertisement) so clients and
// routers on the link switch to this node at once; Release removes it.
//
// It removes only addresses it added. Those carry the address protocol
// Proto (IFA_PROTO, Linux 6.1 and later), so a restarted process still
// knows the ones a killed one left behind; an address the user configured
// is announced when owned but never removed.
package vipaif

import "time"

// Proto marks the addresses this package adds (IFA_PROTO; 0-3 are the
// kernel's).
const Proto = 0x56

// Announcements is how many times Own announces a VIPA, Interval apart:
// the first at once, the rest in case a frame is lost or a switch is slow
// to learn (keepalived repeats its gratuitous ARPs the same way).
const (
	Announcements = 5
	Interval      = 250 * time.Millisecond
)
