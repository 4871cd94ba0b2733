package serfsync

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Every decoder of peer data is fuzzed: it must not panic, and what it
// accepts must be canonical, encoding back to the very bytes it came from,
// so one hash names one meaning.

func seedReports() [][]byte {
	adv := netip.MustParseAddr("127.0.0.2")
	return [][]byte{
		nil,
		encodeReport(adv, []vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}}),
		encodeReport(adv, []vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 2}, {VIPA: vipaA, Port: 8443, Ready: 1},
			{VIPA: netip.MustParseAddr("fd00::100"), Port: 9000, Ready: 300}}),
		encodeReport(netip.MustParseAddr("::1"), []vipa.Listener{{VIPA: vipaB, Port: 1, Ready: vipa.MaxReady}}),
		// Version 1, as a node without the connection count sends it.
		encodeReport(adv, []vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 2, Conns: vipa.NoConns},
			{VIPA: vipaB, Port: 9000, Ready: 1, Conns: vipa.NoConns}}),
		encodeReport(adv, []vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1, Conns: 300}, {VIPA: vipaA, Port: 8443, Ready: 1, Conns: vipa.MaxConns}}),
		// Version 3: quiesced and weighted lines.
		encodeReport(adv, []vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1, Conns: 3, State: vipa.StateQuiesced},
			{VIPA: vipaA, Port: 8443, Ready: 1, Conns: vipa.NoConns, Weight: 100}, {VIPA: vipaB, Port: 1, Ready: 1, Conns: vipa.NoConns}}),
	}
}

func seedDefs() [][]byte {
	return [][]byte{
		nil,
		encodeDefsT(canonicalDefsT([]*vipa.Definition{def(vipaA.String(), "n", ports("8080", "8443"))}, "n")),
		encodeDefsT(canonicalDefsT([]*vipa.Definition{
			def(vipaA.String(), "n", ports("80-90", "1000")),
			def("fd00::1", "n", ports("9000-9009"), "caddy-b", "10.0.0.3"),
		}, "n")),
		encodeDefsT(canonicalDefsT([]*vipa.Definition{withOptions()}, "me")),
	}
}

func FuzzDecodeReport(f *testing.F) {
	for _, s := range seedReports() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		adv, lines, err := decodeReport(body)
		if err != nil {
			return
		}
		if got := encodeReport(adv, lines); !bytes.Equal(got, body) {
			t.Fatalf("accepted a non-canonical report:\n in %x\nout %x", body, got)
		}
	})
}

func FuzzDecodeDefinitions(f *testing.F) {
	for _, s := range seedDefs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dropped := 0
		defs, err := decodeDefs(body, "n", func(*vipa.Definition, error) { dropped++ })
		if err != nil || dropped > 0 {
			return // a definition vipa's rules refuse is dropped alone
		}
		if got := encodeDefsT(defs); !bytes.Equal(got, body) {
			t.Fatalf("accepted non-canonical definitions:\n in %x\nout %x", body, got)
		}
		for _, d := range defs {
			if !slices.Equal(vipa.NewPortSet(d.Ports), d.Ports) {
				t.Fatalf("port set not merged: %v", d.Ports)
			}
		}
	})
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{"1.0.0", "deadbeefcafe.42.1234567890abcdef", "ffffffffffffffff.18446744073709551615.ffffffffffffffff", "0.1.2", "a..b", "+1.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseDigest(s)
		if ok && d.String() != s {
			t.Fatalf("accepted %q, prints %q", s, d.String())
		}
	})
}

func FuzzSyncMessages(f *testing.F) {
	f.Add((&syncRequest{from: "n01", flags: wantReport, heldReport: digest{1, 2, 3}, defs: digest{4, 5, 6}}).encode())
	f.Add((&syncAnswer{from: "n00", report: digest{1, 2, 3}, reportBody: seedReports()[1], defs: digest{4, 5, 6}, defsBody: seedDefs()[1]}).encode())
	f.Add((&syncAnswer{from: "n00"}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeSyncRequest(b); err == nil && !bytes.Equal(r.encode(), b) {
			t.Fatalf("request does not round-trip: %x", b)
		}
		if a, err := decodeSyncAnswer(b); err == nil && !bytes.Equal(a.encode(), b) {
			t.Fatalf("answer does not round-trip: %x", b)
		}
	})
}

// FuzzChannelServer feeds bytes to the server side of the state channel:
// the client hello, the frame reader, the key trial and the request
// decoder, in plain and keyed mode.
func FuzzChannelServer(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, keys := range [][][]byte{nil, {key}} {
		ck := newChannelKeys(keys, "test")
		var b bytes.Buffer
		nonceC, _ := ck.clientHello(&b)
		s, _ := ck.clientSession(nonceC, make([]byte, nonceSize))
		_ = writeFrame(&b, s.seal((&syncRequest{from: "n01"}).encode()))
		f.Add(b.Bytes(), len(keys) > 0)
	}
	f.Add([]byte("VIPA\x01\x00\x00"), false)
	f.Fuzz(func(t *testing.T, stream []byte, keyed bool) {
		var keys [][]byte
		if keyed {
			keys = [][]byte{key}
		}
		ck := newChannelKeys(keys, "test")
		br := bufio.NewReader(bytes.NewReader(stream))
		h, err := ck.readClientHello(br)
		if err != nil {
			return
		}
		frame, err := readFrame(br, maxRequestFrame)
		if err != nil {
			return
		}
		// The server nonce is all zeros here so seeds can open.
		_, p, err := ck.serverOpen(h.nonce, make([]byte, nonceSize), frame)
		if err != nil {
			return
		}
		_, _ = decodeSyncRequest(p)
	})
}

// FuzzServeConn runs the state channel's real server on the fuzzed bytes
// of a client. It must not panic, must read no more than a legitimate
// client sends before its request opens, and answers only a request that
// opened. In keyed mode the server's nonce is fresh, so nothing opens: the
// fuzzer probes the hello and framing ahead of authentication.
func FuzzServeConn(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, keys := range [][][]byte{nil, {key}} {
		ck := newChannelKeys(keys, "test")
		var b bytes.Buffer
		nonceC, _ := ck.clientHello(&b)
		s, _ := ck.clientSession(nonceC, make([]byte, nonceSize))
		_ = writeFrame(&b, s.seal((&syncRequest{from: "n01"}).encode()))
		f.Add(b.Bytes(), len(keys) > 0)
	}
	f.Add([]byte("VIPA\x01\x01\x04test0123456789abcdef\x00\x10\x00\x00"), true)
	f.Add([]byte("VIPA\x01\x00\x04test0123456789abcdef\x00\x00\x00\xf4"), false)
	agents := map[bool]*Agent{}
	for _, keyed := range []bool{false, true} {
		cfg := Config{NodeName: "n00", BindAddr: netip.MustParseAddrPort("127.0.0.1:0"), Label: "test"}
		if keyed {
			cfg.Keys = [][]byte{key}
		}
		a, err := New(cfg)
		if err != nil {
			f.Fatal(err)
		}
		agents[keyed] = a
	}
	f.Fuzz(func(t *testing.T, stream []byte, keyed bool) {
		c := &pipeConn{in: bytes.NewReader(stream)}
		agents[keyed].serveConn(c)
		read := len(stream) - c.in.Len()
		if limit := maxHello + 4 + maxRequestFrame; read > limit {
			t.Fatalf("server read %d bytes ahead of authentication, limit %d", read, limit)
		}
		if !c.closed {
			t.Fatal("stream left open")
		}
		hello := 5 + nonceSize
		if c.out.Len() > hello && keyed {
			t.Fatalf("answered %d bytes to a stream that cannot have opened", c.out.Len()-hello)
		}
	})
}

// pipeConn is a stream whose peer sent in and reads out.
type pipeConn struct {
	net.Conn
	in     *bytes.Reader
	out    bytes.Buffer
	closed bool
}

func (c *pipeConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *pipeConn) Close() error                     { c.closed = true; return nil }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 1} }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadFrame: a frame reads whole and exactly as announced, or not at
// all, and never beyond its limit.
func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	_ = writeFrame(&b, []byte("hello"))
	f.Add(b.Bytes(), uint32(16))
	f.Add([]byte{0, 0x10, 0, 0, 1, 2, 3}, uint32(maxAnswerFrame))
	f.Add([]byte{0, 0, 0, 0}, uint32(0))
	f.Fuzz(func(t *testing.T, stream []byte, limit uint32) {
		limit %= maxAnswerFrame + 1
		p, err := readFrame(bytes.NewReader(stream), int(limit))
		if err != nil {
			return
		}
		n := binary.BigEndian.Uint32(stream)
		if n > limit || uint32(len(p)) != n || !bytes.Equal(p, stream[4:4+n]) {
			t.Fatalf("frame of %d bytes (announced %d, limit %d) read as %d bytes", len(stream)-4, n, limit, len(p))
		}
	})
}

// FuzzChannelClient feeds bytes to the client side: the server hello, the
// answer frame, its opening and the answer decoder.
func FuzzChannelClient(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	nonceC := make([]byte, nonceSize)
	for _, keys := range [][][]byte{nil, {key}} {
		ck := newChannelKeys(keys, "test")
		var b bytes.Buffer
		b.WriteString(channelMagic)
		b.WriteByte(channelVersion)
		b.Write(make([]byte, nonceSize))
		s := &session{}
		if len(keys) > 0 {
			s, _ = newSession(ck.keys[0], nonceC, make([]byte, nonceSize), false)
		}
		ans := syncAnswer{from: "n00", report: digest{1, 2, 3}, reportBody: seedReports()[1], defs: digest{4, 5, 6}, defsBody: seedDefs()[1]}
		_ = writeFrame(&b, s.seal(ans.encode()))
		f.Add(b.Bytes(), len(keys) > 0)
	}
	f.Fuzz(func(t *testing.T, stream []byte, keyed bool) {
		var keys [][]byte
		if keyed {
			keys = [][]byte{key}
		}
		ck := newChannelKeys(keys, "test")
		r := bytes.NewReader(stream)
		nonceS, err := readServerHello(r)
		if err != nil {
			return
		}
		s, err := ck.clientSession(nonceC, nonceS)
		if err != nil {
			t.Fatal(err)
		}
		frame, err := readFrame(r, maxAnswerFrame)
		if err != nil {
			return
		}
		p, err := s.open(frame)
		if err != nil {
			return
		}
		if a, err := decodeSyncAnswer(p); err == nil && !bytes.Equal(a.encode(), p) {
			t.Fatalf("answer does not round-trip: %x", p)
		}
	})
}
