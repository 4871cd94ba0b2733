package serfsync

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The state channel: one request and one answer per TCP stream, on the
// gossip port (see muxTransport); a carry stream (carry.go) goes on with
// further requests and answers, sealed in the same session.
//
//	client → server  hello:  "VIPA" version mode len(label) label nonceC(16)
//	server → client  hello:  "VIPA" version nonceS(16)
//	client → server  frame:  len(u32) sealed request
//	server → client  frame:  len(u32) sealed answer
//
// With fleet keys (mode 1) each frame is AES-256-GCM sealed under a session
// key HMAC-SHA256(K, nonceC‖nonceS), where K = HMAC-SHA256(fleet key,
// "caddy-vipa serfsync channel v1" 0 label). Both nonces are fresh, so a
// recorded stream replays nothing in either direction; the label is bound
// into the key, so fleets sharing a key but not a label cannot talk. The
// server tries every key of the keyring (rotation), the client seals with
// the primary. Without keys (mode 0) frames are plain and a keyed server
// refuses such a client: gossip in clear text has no secret to prove.

//
// Until the first frame opens under a fleet key the client has proven
// nothing, so the server reads no more from it than a legitimate client
// sends first: a hello (at most maxHello bytes) and a request frame (at most
// maxRequestFrame). A larger announced frame ends the stream at once. Frames
// are read as their bytes arrive, never allocated at the announced size.

const (
	channelMagic   = "VIPA"
	channelVersion = 1
	nonceSize      = 16
	maxFrame       = 1 << 20 // bytes of one request or answer, before sealing
	maxLabel       = 255
	sealOverhead   = 16 // AES-GCM tag

	maxHello = len(channelMagic) + 3 + maxLabel + nonceSize
	// maxRequest is the longest request: a sync request (type, name,
	// flags, four digests), a probe request (type, two names) or a carry
	// request (type, name, hash).
	maxRequest      = max(1+2+maxName+1+4*24, maxProbeRequest, maxCarryRequest)
	maxRequestFrame = maxRequest + sealOverhead
	maxAnswerFrame  = maxFrame + 64
)

var (
	errAuth  = errors.New("state channel: authentication failed")
	errFrame = errors.New("state channel: frame too large")
)

// channelKeys are the per-key channel secrets of one agent.
type channelKeys struct {
	label string
	keys  [][]byte // derived K, primary first; empty without fleet keys
}

func newChannelKeys(fleetKeys [][]byte, label string) channelKeys {
	ck := channelKeys{label: label}
	for _, k := range fleetKeys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte("caddy-vipa serfsync channel v1"))
		m.Write([]byte{0})
		m.Write([]byte(label))
		ck.keys = append(ck.keys, m.Sum(nil))
	}
	return ck
}

// session seals or opens the frames of one stream.
type session struct {
	aead             cipher.AEAD // nil in plain mode
	sendDir, recvDir byte
	sendCtr, recvCtr uint64
}

func newSession(k, nonceC, nonceS []byte, client bool) (*session, error) {
	m := hmac.New(sha256.New, k)
	m.Write(nonceC)
	m.Write(nonceS)
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &session{aead: aead, sendDir: 's', recvDir: 'c'}
	if client {
		s.sendDir, s.recvDir = 'c', 's'
	}
	return s, nil
}

func gcmNonce(dir byte, ctr uint64) []byte {
	var n [12]byte
	n[0] = dir
	binary.BigEndian.PutUint64(n[4:], ctr)
	return n[:]
}

func (s *session) seal(p []byte) []byte {
	if s.aead == nil {
		return p
	}
	out := s.aead.Seal(nil, gcmNonce(s.sendDir, s.sendCtr), p, nil)
	s.sendCtr++
	return out
}

func (s *session) open(p []byte) ([]byte, error) {
	if s.aead == nil {
		return p, nil
	}
	out, err := s.aead.Open(nil, gcmNonce(s.recvDir, s.recvCtr), p, nil)
	if err != nil {
		return nil, errAuth
	}
	s.recvCtr++
	return out, nil
}

// writeFrame writes one length-prefixed frame.
func writeFrame(w io.Writer, p []byte) error {
	buf := make([]byte, 4, 4+len(p))
	binary.BigEndian.PutUint32(buf, uint32(len(p)))
	_, err := w.Write(append(buf, p...))
	return err
}

// frameChunk is the most readFrame allocates ahead of the bytes it holds.
const frameChunk = 4 << 10

// readFrame reads one length-prefixed frame of at most limit bytes. Its
// buffer grows as the bytes arrive, at most doubling, so a peer that
// announces a large frame and stalls costs at most twice what it sent.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if uint64(size) > uint64(limit) {
		return nil, errFrame
	}
	want := int(size)
	p := make([]byte, 0, min(want, frameChunk))
	for len(p) < want {
		if len(p) == cap(p) {
			p = append(make([]byte, 0, min(want, 2*cap(p))), p...)
		}
		m, err := io.ReadFull(r, p[len(p):min(cap(p), want)])
		p = p[:len(p)+m]
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// clientHello starts a stream and returns the client's nonce.
func (ck channelKeys) clientHello(w io.Writer) ([]byte, error) {
	nonce := make([]byte, nonceSize)
	_, _ = rand.Read(nonce)
	b := make([]byte, 0, 8+len(ck.label)+nonceSize)
	b = append(b, channelMagic...)
	b = append(b, channelVersion, ck.mode(), byte(len(ck.label)))
	b = append(b, ck.label...)
	b = append(b, nonce...)
	_, err := w.Write(b)
	return nonce, err
}

func (ck channelKeys) mode() byte {
	if len(ck.keys) > 0 {
		return 1
	}
	return 0
}

// hello is a client hello as the server reads it.
type hello struct {
	mode  byte
	label string
	nonce []byte
}

// readClientHello parses a client hello; errAuth for a peer this server
// must refuse (other label, other mode).
func (ck channelKeys) readClientHello(r io.Reader) (hello, error) {
	var head [7]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return hello{}, err
	}
	if string(head[:4]) != channelMagic || head[4] != channelVersion {
		return hello{}, fmt.Errorf("state channel: bad hello %q", head[:5])
	}
	rest := make([]byte, int(head[6])+nonceSize)
	if _, err := io.ReadFull(r, rest); err != nil {
		return hello{}, err
	}
	h := hello{mode: head[5], label: string(rest[:head[6]]), nonce: rest[head[6]:]}
	if h.mode != ck.mode() || h.label != ck.label {
		return h, errAuth
	}
	return h, nil
}

// serverHello answers a client hello and returns the server's nonce.
func serverHello(w io.Writer) ([]byte, error) {
	nonce := make([]byte, nonceSize)
	_, _ = rand.Read(nonce)
	b := append([]byte(channelMagic), channelVersion)
	_, err := w.Write(append(b, nonce...))
	return nonce, err
}

// readServerHello reads the server's nonce.
func readServerHello(r io.Reader) ([]byte, error) {
	b := make([]byte, 5+nonceSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if string(b[:4]) != channelMagic || b[4] != channelVersion {
		return nil, fmt.Errorf("state channel: bad server hello")
	}
	return b[5:], nil
}

// clientSession is the client's session under the primary key.
func (ck channelKeys) clientSession(nonceC, nonceS []byte) (*session, error) {
	if len(ck.keys) == 0 {
		return &session{}, nil
	}
	return newSession(ck.keys[0], nonceC, nonceS, true)
}

// serverOpen opens the client's first frame under each key in turn and
// returns the session that opened it.
func (ck channelKeys) serverOpen(nonceC, nonceS, frame []byte) (*session, []byte, error) {
	if len(ck.keys) == 0 {
		return &session{}, frame, nil
	}
	for _, k := range ck.keys {
		s, err := newSession(k, nonceC, nonceS, false)
		if err != nil {
			return nil, nil, err
		}
		if p, err := s.open(frame); err == nil {
			return s, p, nil
		}
	}
	return nil, nil, errAuth
}
