package serfsync

import (
	"bufio"
	"bytes"
	"net/netip"
	"slices"
	"testing"
)

// Every decoder of peer data is fuzzed: it must not panic, and what it
// accepts must be canonical, encoding back to the very bytes it came from,
// so one hash names one meaning.

func seedReports() [][]byte {
	adv := netip.MustParseAddr("127.0.0.2")
	return [][]byte{
		nil,
		encodeReport(adv, []Listener{{VIPA: vipaA, Port: 8080, Ready: 1}}),
		encodeReport(adv, []Listener{{VIPA: vipaA, Port: 8080, Ready: 2}, {VIPA: vipaA, Port: 8443, Ready: 1},
			{VIPA: netip.MustParseAddr("fd00::100"), Port: 9000, Ready: 300}}),
		encodeReport(netip.MustParseAddr("::1"), []Listener{{VIPA: vipaB, Port: 1, Ready: maxReady}}),
	}
}

func seedDefs() [][]byte {
	return [][]byte{
		nil,
		encodeDefs(canonicalDefs([]*Definition{def(vipaA.String(), "n", ports("8080", "8443"))}, "n")),
		encodeDefs(canonicalDefs([]*Definition{
			def(vipaA.String(), "n", ports("80-90", "1000")),
			def("fd00::1", "n", ports("9000-9009"), "caddy-b", "10.0.0.3"),
		}, "n")),
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
		defs, err := decodeDefs(body, "n")
		if err != nil {
			return
		}
		if got := encodeDefs(defs); !bytes.Equal(got, body) {
			t.Fatalf("accepted non-canonical definitions:\n in %x\nout %x", body, got)
		}
		for _, d := range defs {
			if !slices.Equal(NewPortSet(d.Ports), d.Ports) {
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
		frame, err := readFrame(br)
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
