package serfsync

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

// handshake runs a client and a server hello and the first frame through a
// buffer and returns what the server opened.
func handshake(client, server channelKeys, payload []byte) ([]byte, error) {
	var c2s bytes.Buffer
	nonceC, _ := client.clientHello(&c2s)
	h, err := server.readClientHello(bufio.NewReader(&c2s))
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
	f, err := readFrame(&frame)
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
	_ = writeFrame(&b, make([]byte, maxFrame+65))
	if _, err := readFrame(&b); !errors.Is(err, errFrame) {
		t.Fatalf("oversized frame: %v", err)
	}
}
