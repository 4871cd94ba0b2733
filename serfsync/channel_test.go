package serfsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// handshake runs a client and a server hello and the first frame through a
// buffer and returns what the server opened.
func handshake(client, server channelKeys, payload []byte) ([]byte, error) {
	var c2s bytes.Buffer
	nonceC, _ := client.clientHello(&c2s)
	h, err := server.readClientHello(&c2s)
	if err != nil {
		return nil, err
	}
	var s2c bytes.Buffer
	nonceS, _ := serverHello(&s2c)
	gotS, err := readServerHello(&s2c)
	if err != nil || !bytes.Equal(gotS, nonceS) {
		return nil, errors.New("server hello")
	}
	cs, _ := client.clientSession(nonceC, nonceS)
	var frame bytes.Buffer
	_ = writeFrame(&frame, cs.seal(payload))
	f, err := readFrame(&frame, maxRequestFrame)
	if err != nil {
		return nil, err
	}
	_, p, err := server.serverOpen(h.nonce, nonceS, f)
	return p, err
}

func TestChannelAuthentication(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	msg := []byte("sync")
	cases := []struct {
		name           string
		client, server channelKeys
		ok             bool
	}{
		{"plain", newChannelKeys(nil, "l"), newChannelKeys(nil, "l"), true},
		{"keyed", newChannelKeys([][]byte{k1}, "l"), newChannelKeys([][]byte{k1}, "l"), true},
		{"rotated: client's primary is the server's second key", newChannelKeys([][]byte{k2, k1}, "l"), newChannelKeys([][]byte{k1, k2}, "l"), true},
		{"wrong key", newChannelKeys([][]byte{k2}, "l"), newChannelKeys([][]byte{k1}, "l"), false},
		{"plain client, keyed server", newChannelKeys(nil, "l"), newChannelKeys([][]byte{k1}, "l"), false},
		{"keyed client, plain server", newChannelKeys([][]byte{k1}, "l"), newChannelKeys(nil, "l"), false},
		{"other label", newChannelKeys([][]byte{k1}, "a"), newChannelKeys([][]byte{k1}, "b"), false},
	}
	for _, c := range cases {
		p, err := handshake(c.client, c.server, msg)
		if c.ok != (err == nil && bytes.Equal(p, msg)) {
			t.Errorf("%s: got %q, %v", c.name, p, err)
		}
	}
}

// TestChannelNoReplay: a frame sealed for one stream does not open in
// another, because the server's nonce is fresh per stream.
func TestChannelNoReplay(t *testing.T) {
	ck := newChannelKeys([][]byte{bytes.Repeat([]byte{1}, 32)}, "l")
	nonceC := bytes.Repeat([]byte{3}, nonceSize)
	cs, _ := ck.clientSession(nonceC, bytes.Repeat([]byte{4}, nonceSize))
	frame := cs.seal([]byte("sync"))
	if _, _, err := ck.serverOpen(nonceC, bytes.Repeat([]byte{5}, nonceSize), frame); err == nil {
		t.Fatal("replayed frame opened under a new server nonce")
	}
	// Nor does the server's answer open as a client frame (direction).
	ss, _, err := ck.serverOpen(nonceC, bytes.Repeat([]byte{4}, nonceSize), frame)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.open(ss.seal([]byte("answer"))); err == nil {
		t.Fatal("a frame opened in the direction it was sealed for the other")
	}
}

func TestFrameLimit(t *testing.T) {
	var b bytes.Buffer
	_ = writeFrame(&b, make([]byte, maxAnswerFrame+1))
	if _, err := readFrame(&b, maxAnswerFrame); !errors.Is(err, errFrame) {
		t.Fatalf("oversized frame: %v", err)
	}
	// The longest request a client sends fits the server's first read.
	ck := newChannelKeys([][]byte{bytes.Repeat([]byte{1}, 32)}, "l")
	req := syncRequest{from: strings.Repeat("n", maxName), flags: 0xff,
		heldReport: digest{^uint64(0), ^uint64(0), ^uint64(0)}, heldDefs: digest{^uint64(0), ^uint64(0), ^uint64(0)},
		report: digest{^uint64(0), ^uint64(0), ^uint64(0)}, defs: digest{^uint64(0), ^uint64(0), ^uint64(0)}}
	if p, err := handshake(ck, ck, req.encode()); err != nil || len(p) > maxRequest {
		t.Fatalf("longest sync request: %d bytes, %v; want at most %d", len(p), err, maxRequest)
	}
	probe := probeRequest{from: strings.Repeat("n", maxName), target: strings.Repeat("t", maxName)}
	if p, err := handshake(ck, ck, probe.encode()); err != nil || len(p) != maxRequest {
		t.Fatalf("longest probe request: %d bytes, %v; want %d", len(p), err, maxRequest)
	}
	if _, err := handshake(ck, ck, make([]byte, maxRequest+1)); !errors.Is(err, errFrame) {
		t.Fatalf("a request longer than any client sends: %v", err)
	}
}

// TestFrameGrowsWithData: a frame announced large and not sent makes the
// reader ask for no more than a chunk at a time; its buffer follows what
// arrives. One that arrives reads whole.
func TestFrameGrowsWithData(t *testing.T) {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, uint32(maxFrame))
	b.Write(make([]byte, 100))
	r := &largestRead{r: &b}
	if _, err := readFrame(r, maxAnswerFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v", err)
	}
	if r.largest > frameChunk {
		t.Fatalf("a 1 MiB frame with 100 bytes sent was read into %d bytes", r.largest)
	}
	b.Reset()
	body := make([]byte, maxFrame)
	for i := range body {
		body[i] = byte(i * 7)
	}
	_ = writeFrame(&b, body)
	r = &largestRead{r: &b}
	got, err := readFrame(r, maxAnswerFrame)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("whole frame: %d bytes, %v", len(got), err)
	}
	if r.ahead > frameChunk {
		t.Fatalf("asked for %d bytes more than had arrived", r.ahead)
	}
}

// largestRead records the largest buffer a reader was asked to fill, and
// the most it was asked for beyond twice what it had delivered.
type largestRead struct {
	r                     io.Reader
	largest, ahead, given int
}

func (l *largestRead) Read(p []byte) (int, error) {
	l.largest = max(l.largest, len(p))
	l.ahead = max(l.ahead, len(p)-l.given-l.given/16)
	n, err := l.r.Read(p)
	l.given += n
	return n, err
}
