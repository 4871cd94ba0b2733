package listenwatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"testing"
)

// formatProcAddrPort is the kernel's rendering of an address in /proc/net/tcp.
func formatProcAddrPort(ap netip.AddrPort) string {
	raw := ap.Addr().AsSlice()
	var b bytes.Buffer
	for w := 0; w < len(raw); w += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(raw[w:]))
	}
	fmt.Fprintf(&b, ":%04X", ap.Port())
	return b.String()
}

func skipUnlessLittleEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("testdata was written on a little-endian host")
	}
}

func TestParseProcNetTCPTestdata(t *testing.T) {
	skipUnlessLittleEndian(t)
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		file string
		want Snapshot
	}{
		{"testdata/proc_net_tcp", Snapshot{
			ap("0.0.0.0:22"):       1,
			ap("127.0.0.1:8080"):   1,
			ap("127.0.0.2:9000"):   2,
			ap("127.0.0.100:8080"): 1,
		}},
		// [::]:443 is dual-stack: it accepts IPv4 on 0.0.0.0:443 too.
		{"testdata/proc_net_tcp6", Snapshot{
			ap("[::]:443"):             1,
			ap("0.0.0.0:443"):          1,
			ap("[::1]:8443"):           1,
			ap("127.0.0.3:7000"):       1,
			ap("[fe80::ff:5e00:1]:80"): 1,
		}},
	} {
		data, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got := make(Snapshot)
		if err := parseProcNetTCP(data, got, false); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.file, got, tc.want)
		}
	}
}

// TestParseProcNetTCPV6Only: /proc/net/tcp6 does not show IPV6_V6ONLY, so
// a [::] listener takes the flag given (the host's default): V6ONLY, it
// accepts IPv6 only; dual-stack, IPv4 on 0.0.0.0 too.
func TestParseProcNetTCPV6Only(t *testing.T) {
	skipUnlessLittleEndian(t)
	data, err := os.ReadFile("testdata/proc_net_tcp6")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	for _, v6only := range []bool{false, true} {
		s := make(Snapshot)
		if err := parseProcNetTCP(data, s, v6only); err != nil {
			t.Fatal(err)
		}
		want := 1
		if v6only {
			want = 0
		}
		if s[ap("[::]:443")] != 1 || s[ap("0.0.0.0:443")] != want || s[ap("127.0.0.3:7000")] != 1 {
			t.Errorf("v6only %v: [::]:443 %d, 0.0.0.0:443 %d, 127.0.0.3:7000 %d; want 1, %d, 1",
				v6only, s[ap("[::]:443")], s[ap("0.0.0.0:443")], s[ap("127.0.0.3:7000")], want)
		}
	}
}

func TestParseProcNetTCPErrors(t *testing.T) {
	const header = "  sl  local_address rem_address   st tx_queue\n"
	for _, in := range []string{
		"",
		"   0: 0100007F:1F90 00000000:0000 0A\n",
		header + "   0: 0100007F:1F90 00000000:0000\n",
		header + "   0 0100007F:1F90 00000000:0000 0A\n",
		header + "   0: 0100007F:1F90 00000000:0000 XY\n",
		header + "   0: 0100007F:1F90 00000000:0000 0A0\n",
		header + "   0: 0100007:1F90 00000000:0000 0A\n",
		header + "   0: 0100007F1F90 00000000:0000 0A\n",
		header + "   0: 0100007F:11F90 00000000:0000 0A\n",
		header + "   0: 0100007F: 00000000:0000 0A\n",
		header + "   0: 0100007G:1F90 00000000:0000 0A\n",
		header + "   0: 0000000000000000000000000100000:1F90 00000000:0000 0A\n",
	} {
		if err := parseProcNetTCP([]byte(in), make(Snapshot), false); err == nil {
			t.Errorf("no error for %q", in)
		}
	}
	// Blank lines and a missing final newline are fine; other states are
	// not decoded.
	s := make(Snapshot)
	in := header + "\n   0: zz 00000000:0000 01\n   1: 0100007F:1F90 00000000:0000 0a"
	if err := parseProcNetTCP([]byte(in), s, false); err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 {
		t.Errorf("got %v", s)
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		ap, _, listen, err := parseProcNetTCPLine(line, tcpListen)
		if err != nil {
			if listen {
				t.Fatal("listen with an error")
			}
			return
		}
		if !listen {
			return
		}
		if !ap.Addr().IsValid() || ap.Addr().Zone() != "" {
			t.Fatalf("invalid address %v", ap)
		}
		again := fmt.Sprintf("%4d: %s %s 0A rest", 0, formatProcAddrPort(ap), formatProcAddrPort(ap))
		ap2, _, listen2, err := parseProcNetTCPLine([]byte(again), tcpListen)
		if err != nil || !listen2 || ap2 != ap {
			t.Fatalf("round trip of %v: %v %v %v", ap, ap2, listen2, err)
		}
		if bytes.IndexByte(line, '\n') < 0 {
			s := make(Snapshot)
			if err := parseProcNetTCP(append([]byte("sl\n"), line...), s, true); err != nil || len(s) != 1 {
				t.Fatalf("table parse: %v %v", s, err)
			}
		}
	})
}

func TestParseProcNetTCPConns(t *testing.T) {
	ap := netip.MustParseAddrPort
	line := func(st string, local, remote netip.AddrPort) string {
		return fmt.Sprintf("   0: %s %s %s 00000000:00000000 00:00000000 00000000  1000 0 1 1\n",
			formatProcAddrPort(local), formatProcAddrPort(remote), st)
	}
	in := "  sl  local_address rem_address   st\n" +
		line("01", ap("127.0.0.1:8080"), ap("127.0.0.2:40000")) +
		line("01", ap("127.0.0.1:8080"), ap("127.0.0.2:40001")) +
		line("01", ap("[::1]:8080"), ap("[::2]:40000")) +
		line("01", ap("[::ffff:127.0.0.1]:8080"), ap("[::ffff:127.0.0.2]:40002")) +
		line("0A", ap("127.0.0.1:8080"), ap("0.0.0.0:0")) +
		line("06", ap("127.0.0.1:8080"), ap("127.0.0.2:40003")) // TIME_WAIT
	c := make(Conns)
	if err := parseProcNetTCP([]byte(in), c, false); err != nil {
		t.Fatal(err)
	}
	want := Conns{
		{ap("127.0.0.1:8080"), netip.MustParseAddr("127.0.0.2")}: 3,
		{ap("[::1]:8080"), netip.MustParseAddr("::2")}:           1,
	}
	if !maps.Equal(c, want) {
		t.Errorf("got %v, want %v", c, want)
	}
	bad := "sl\n   0: 0100007F:1F90 0200007G:9C40 01\n"
	if err := parseProcNetTCP([]byte(bad), make(Conns), false); err == nil {
		t.Error("no error for a bad remote address")
	}
}
