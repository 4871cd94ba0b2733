package listenwatch

import (
	"encoding/binary"
	"errors"
	"maps"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// nlMsg frames body as one netlink message, padded to alignment.
func nlMsg(typ uint16, seq uint32, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgAlign(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, body...)
	return b[:cap(b)]
}

// diagMsg is an inet_diag_msg for a socket bound to ap.
func diagMsg(family, state uint8, ap netip.AddrPort) []byte {
	b := make([]byte, inetDiagMsgLen)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:], ap.Port())
	copy(b[8:], ap.Addr().AsSlice())
	return b
}

// withV6Only appends an INET_DIAG_SKV6ONLY attribute to an inet_diag_msg,
// after an attribute the parser must skip.
func withV6Only(msg []byte, v6only byte) []byte {
	shutdown := []byte{5, 0, 8, 0, 0, 0, 0, 0} // INET_DIAG_SHUTDOWN, u8, padded
	attr := []byte{5, 0, inetDiagV6Only, 0, v6only, 0, 0, 0}
	return concat(msg, shutdown, attr)
}

func errBody(errno int32) []byte {
	return binary.NativeEndian.AppendUint32(nil, uint32(errno))
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestPutDiagRequest(t *testing.T) {
	var req [diagRequestLen]byte
	putDiagRequest(&req, unix.AF_INET6, tcpListen, 7)
	ne := binary.NativeEndian
	if ne.Uint32(req[0:]) != diagRequestLen || ne.Uint16(req[4:]) != unix.SOCK_DIAG_BY_FAMILY ||
		ne.Uint16(req[6:]) != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || ne.Uint32(req[8:]) != 7 {
		t.Errorf("bad header % x", req[:nlmsgHdrLen])
	}
	r := req[nlmsgHdrLen:]
	if r[0] != unix.AF_INET6 || r[1] != unix.IPPROTO_TCP || ne.Uint32(r[4:]) != 1<<10 {
		t.Errorf("bad request % x", r)
	}
}

func TestParseDiag(t *testing.T) {
	ap := netip.MustParseAddrPort
	listen4 := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagMsg(unix.AF_INET, tcpListen, ap("127.0.0.1:8080")))
	listen6 := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagMsg(unix.AF_INET6, tcpListen, ap("[::1]:8080")))
	mapped := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagMsg(unix.AF_INET6, tcpListen, ap("[::ffff:127.0.0.1]:8080")))
	established := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagMsg(unix.AF_INET, 1, ap("127.0.0.1:9")))
	stale := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 0, diagMsg(unix.AF_INET, tcpListen, ap("127.0.0.1:9")))
	done := nlMsg(unix.NLMSG_DONE, 1, errBody(0))
	wild6 := diagMsg(unix.AF_INET6, tcpListen, ap("[::]:8080"))
	v6only := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, withV6Only(wild6, 1))
	dual := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, withV6Only(wild6, 0))
	noAttr := nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, wild6)

	for _, tc := range []struct {
		name    string
		in      []byte
		want    Snapshot
		done    bool
		wantErr error
	}{
		{"empty", nil, Snapshot{}, false, nil},
		{"sockets", concat(listen4, listen6, listen4, mapped, established, stale),
			Snapshot{ap("127.0.0.1:8080"): 3, ap("[::1]:8080"): 1}, false, nil},
		// A [::] listener accepts IPv4 on 0.0.0.0 too unless it is V6ONLY;
		// without the attribute it is dual-stack, Linux's default.
		{"v6only wildcard", v6only, Snapshot{ap("[::]:8080"): 1}, false, nil},
		{"dual-stack wildcard", dual, Snapshot{ap("[::]:8080"): 1, ap("0.0.0.0:8080"): 1}, false, nil},
		{"wildcard without attribute", noAttr, Snapshot{ap("[::]:8080"): 1, ap("0.0.0.0:8080"): 1}, false, nil},
		{"done", concat(listen4, done, listen6), Snapshot{ap("127.0.0.1:8080"): 1}, true, nil},
		{"done without payload", nlMsg(unix.NLMSG_DONE, 1, nil), Snapshot{}, true, nil},
		{"done with error", nlMsg(unix.NLMSG_DONE, 1, errBody(-int32(unix.EINTR))), Snapshot{}, true, unix.EINTR},
		{"stale done", concat(nlMsg(unix.NLMSG_DONE, 9, nil), listen4), Snapshot{ap("127.0.0.1:8080"): 1}, false, nil},
		{"error", nlMsg(unix.NLMSG_ERROR, 1, errBody(-int32(unix.ENOENT))), Snapshot{}, false, unix.ENOENT},
		{"other type", nlMsg(unix.NLMSG_NOOP, 1, nil), Snapshot{}, false, nil},
	} {
		s := make(Snapshot)
		done, err := parseDiag(tc.in, 1, s)
		if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) || done != tc.done || !maps.Equal(s, tc.want) {
			t.Errorf("%s: got %v %v %v, want %v %v %v", tc.name, s, done, err, tc.want, tc.done, tc.wantErr)
		}
	}

	for name, in := range map[string][]byte{
		"short header":  listen4[:10],
		"short message": listen4[:40],
		"short body":    nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, make([]byte, 20)),
		"short error":   nlMsg(unix.NLMSG_ERROR, 1, nil),
		"ack":           nlMsg(unix.NLMSG_ERROR, 1, errBody(0)),
		"zero length":   make([]byte, nlmsgHdrLen),
	} {
		if _, err := parseDiag(in, 1, make(Snapshot)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseDiag(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s := make(Snapshot)
		done, err := parseDiag(b, 1, s)
		if done && len(b) < nlmsgHdrLen {
			t.Fatal("done without a message")
		}
		_ = err
		for ap, n := range s {
			if !ap.Addr().IsValid() || ap.Addr().Is4In6() || n <= 0 {
				t.Fatalf("bad entry %v: %d", ap, n)
			}
		}
	})
}
