package tables

import "strconv"

// Why is the explanation of one routing decision: the rule that ranked the
// candidates, how the row taken was reached, and how many dials failed
// before it answered. It is three bytes, so every CRT entry carries its own
// at no cost; it is rendered as text only when listed.
type Why struct {
	Rule    Reason // the ranked choice's reason; ReasonNone when there was no row
	Offered Reason // how the row taken was offered: Rule, ReasonNext or ReasonUnhealthy
	Failed  uint8  // dials that failed before it answered, at most 255
}

// Text is the explanation as the admin API shows it; last names the node
// of the last failed dial, when one failed. E.g. "roundrobin; retry after
// dial to caddy-b failed".
func (w Why) Text(last string) string {
	if w.Rule == ReasonNone {
		return ""
	}
	s := w.Rule.String()
	switch {
	case w.Offered == ReasonUnhealthy:
		s += "; no healthy row with room, unhealthy fallback"
	case w.Offered == ReasonNext && w.Failed == 0:
		s += "; that row could not take it, next candidate"
	}
	switch {
	case w.Failed == 0:
	case w.Failed == 1 && last != "":
		s += "; retry after dial to " + last + " failed"
	case w.Failed == 1:
		s += "; retry after a failed dial"
	default:
		n := strconv.Itoa(int(w.Failed))
		if w.Failed == 255 {
			n += "+"
		}
		s += "; retry after " + n + " failed dials"
		if last != "" {
			s += ", the last to " + last
		}
	}
	return s
}

// DialFailed records that the row the last Next offered did not answer,
// for the explanation of the row that does, and so that a row this dial
// turned unhealthy is not offered again to the same connection.
func (c *Candidates) DialFailed() {
	if c.k == 0 {
		return
	}
	n := int32(c.g.Len())
	c.last = c.g.order[(c.first+(c.k-1)%n)%n]
	if k := c.k - 1; k < n && k < 64 {
		c.tried |= 1 << k
	}
	if c.fails < 255 {
		c.fails++
	}
}

// Why explains the row the last Next offered.
func (c *Candidates) Why() Why { return Why{Rule: c.reason, Offered: c.Reason(), Failed: c.fails} }

// LastFailed is the row of the last dial DialFailed recorded, or nil.
func (c *Candidates) LastFailed() *Target {
	if c.fails == 0 {
		return nil
	}
	return c.g.active[c.last]
}
