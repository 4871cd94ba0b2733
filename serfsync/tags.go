package serfsync

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
)

// Tag names this package sets on its serf member. Serf caps all tags of a
// member at 512 encoded bytes, so names are one letter and values are short.
const (
	tagAdvertise = "adv" // this host's advertise address
	tagReport    = "r"   // digest of the listener report
	tagDefs      = "d"   // digest of the definitions this node routes

	// tagConfigured is set, to "1", once the node's config is in (Agent.Configured):
	// its tags then say what it defines and backs up. A member without it
	// is starting (serf's rejoin from its snapshot, a join retry that
	// reached it between its bind and its tags) or older.
	tagConfigured = "c"
)

// State kinds, mixed into the hash so a report never verifies as definitions.
const (
	kindReport byte = 'r'
	kindDefs   byte = 'd'
)

// digest names one version of a node's report or definitions: gen is random
// per agent start, seq grows by one per change within a gen, hash is the
// first 8 bytes of SHA-256 over the kind and the canonical body.
type digest struct {
	gen, seq, hash uint64
}

// hashBody hashes a canonical body of the given kind.
func hashBody(kind byte, body []byte) uint64 {
	h := sha256.New()
	h.Write([]byte{kind})
	h.Write(body)
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Hashes of the empty report and the empty definitions: a peer holding one
// of these needs no fetch, the content is known.
var (
	emptyReportHash = hashBody(kindReport, nil)
	emptyDefsHash   = hashBody(kindDefs, nil)
)

// covers reports whether holding h makes a fetch for version d unnecessary.
// A different gen never covers: the peer restarted, or h is stale.
func (h digest) covers(d digest) bool {
	return h.gen == d.gen && h.seq >= d.seq
}

// String is the tag form "gen.seq.hash", gen and hash in hex.
func (d digest) String() string {
	b := make([]byte, 0, 48)
	b = strconv.AppendUint(b, d.gen, 16)
	b = append(b, '.')
	b = strconv.AppendUint(b, d.seq, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, d.hash, 16)
	return string(b)
}

// parseDigest parses a tag value written by String.
func parseDigest(s string) (digest, bool) {
	if len(s) > 64 {
		return digest{}, false
	}
	g, rest, ok1 := strings.Cut(s, ".")
	q, h, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return digest{}, false
	}
	var d digest
	var err error
	if d.gen, err = parseUint(g, 16); err != nil {
		return digest{}, false
	}
	if d.seq, err = parseUint(q, 10); err != nil {
		return digest{}, false
	}
	if d.hash, err = parseUint(h, 16); err != nil {
		return digest{}, false
	}
	return d, true
}

// parseUint accepts only the spelling String writes (lower-case hex or
// decimal digits, no leading zero), so a tag value has one spelling.
func parseUint(s string, base int) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || base == 16 && 'a' <= c && c <= 'f') {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseUint(s, base, 64)
}
