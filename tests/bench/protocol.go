//go:build linux

package main

import (
	"encoding/binary"
	"time"
)

// The first byte a client sends tells the backend what the connection is for.
const (
	modeUpload   = 'U' // 16-byte header, then the stream until half-close; the backend answers count and verdict
	modeDownload = 'D' // 16-byte header; the backend streams for the given time, half-closes, reads the client's count
	modeExchange = 'E' // one 64-byte message echoed, then close
	modePing     = 'P' // 64-byte messages echoed until the client closes
	modeIdle     = 'I' // one byte each way, then the connection stays idle until the client closes
	idleReply    = 'i'
)

const (
	hdrLen   = 16
	replyLen = 16
	msgLen   = 64
)

// bulkHeader starts an upload or download: mode, duration (download only) and seed.
func bulkHeader(mode byte, d time.Duration, seed uint64) []byte {
	h := make([]byte, hdrLen)
	h[0] = mode
	binary.LittleEndian.PutUint32(h[4:], uint32(d/time.Millisecond))
	binary.LittleEndian.PutUint64(h[8:], seed)
	return h
}

func parseBulkHeader(h []byte) (d time.Duration, seed uint64) {
	return time.Duration(binary.LittleEndian.Uint32(h[4:])) * time.Millisecond, binary.LittleEndian.Uint64(h[8:])
}

// uploadReply carries what the backend received: byte count and the offset of
// the first wrong byte (-1 when none).
func uploadReply(n, bad int64) []byte {
	r := make([]byte, replyLen)
	binary.LittleEndian.PutUint64(r, uint64(n))
	binary.LittleEndian.PutUint64(r[8:], uint64(bad))
	return r
}

func parseUploadReply(r []byte) (n, bad int64) {
	return int64(binary.LittleEndian.Uint64(r)), int64(binary.LittleEndian.Uint64(r[8:]))
}
