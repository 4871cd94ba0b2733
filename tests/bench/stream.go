//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// Every bulk stream is a window on one fixed pseudo-random table, starting at
// an offset given by the connection's seed: senders write slices of the table
// without generating anything, receivers verify with memcmp.
const (
	tableLen = 1<<20 + 4093 // a prime-ish length, so I/O chunk boundaries drift through the table
	chunkLen = 128 << 10    // write and read size of the bulk cases
)

// table holds tableLen bytes plus a copy of its first chunkLen bytes, so a
// chunk starting anywhere in the table is one contiguous slice.
var table = func() []byte {
	b := make([]byte, tableLen+chunkLen)
	r := rand.New(rand.NewPCG(0x5eed, 0xcadd1e))
	for i := 0; i+8 <= tableLen; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := tableLen &^ 7; i < tableLen; i++ {
		b[i] = byte(r.Uint32())
	}
	copy(b[tableLen:], b[:chunkLen])
	return b
}()

// sender produces the stream of one seed.
type sender struct {
	pos int
	n   int64 // bytes sent so far
}

func newSender(seed uint64) *sender { return &sender{pos: int(seed % tableLen)} }

// next returns the next chunk to write; advance records how much of it went out.
func (s *sender) next() []byte { return table[s.pos : s.pos+chunkLen] }

func (s *sender) advance(n int) {
	s.pos = (s.pos + n) % tableLen
	s.n += int64(n)
}

// checker verifies that the bytes it is fed are exactly the stream of one seed.
type checker struct {
	pos int
	n   int64 // bytes checked so far
	bad int64 // stream offset of the first wrong byte, -1 while all are right
}

func newChecker(seed uint64) *checker { return &checker{pos: int(seed % tableLen), bad: -1} }

// check compares p with the next len(p) bytes of the stream and reports
// whether every byte so far was right.
func (c *checker) check(p []byte) bool {
	for len(p) > 0 {
		k := min(len(p), chunkLen)
		if want := table[c.pos : c.pos+k]; c.bad < 0 && !bytes.Equal(p[:k], want) {
			c.bad = c.n + int64(firstDiff(p[:k], want))
		}
		c.pos = (c.pos + k) % tableLen
		c.n += int64(k)
		p = p[k:]
	}
	return c.bad < 0
}

// verify is the final verdict once the sender's byte count is known: every
// byte right and none missing or extra.
func (c *checker) verify(sent int64) error {
	switch {
	case c.bad >= 0:
		return fmt.Errorf("byte at stream offset %d differs from what was sent (%d bytes received)", c.bad, c.n)
	case c.n != sent:
		return fmt.Errorf("received %d bytes, sender wrote %d", c.n, sent)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// message builds the 64-byte message of the exchange, ping-pong cases:
// the mode byte the backend dispatches on, an id unique to the connection and
// iteration, and table bytes that depend on the id, so a stale, misrouted
// or altered echo never compares equal.
func message(mode byte, id uint64) [msgLen]byte {
	var m [msgLen]byte
	m[0] = mode
	binary.LittleEndian.PutUint64(m[8:], id)
	copy(m[16:], table[id%tableLen:])
	return m
}

// checkEcho verifies an echoed message.
func checkEcho(sent, got []byte) error {
	if len(got) != len(sent) {
		return fmt.Errorf("echo has %d bytes, sent %d", len(got), len(sent))
	}
	if !bytes.Equal(sent, got) {
		i := firstDiff(got, sent)
		return fmt.Errorf("echo differs at byte %d of %d: got %#x, sent %#x", i, len(sent), got[i], sent[i])
	}
	return nil
}
