package serfsync

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The wire codec: big-endian fixed integers, unsigned varints for counts and
// lengths, addresses as a family byte and 4 or 16 bytes. Every decoder is
// bounded by the bytes it was given and by explicit limits, and rejects
// trailing bytes, so one body has one meaning and one hash.

var errDecode = errors.New("malformed message")

// enc appends to a byte slice.
type enc struct{ b []byte }

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) u16(v uint16)     { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u64(v uint64)     { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *enc) bytes(v []byte) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *enc) string(v string) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *enc) addr(a netip.Addr) {
	switch {
	case !a.IsValid():
		e.byte(0)
	case a.Is4():
		e.byte(4)
		v := a.As4()
		e.b = append(e.b, v[:]...)
	default:
		e.byte(6)
		v := a.As16()
		e.b = append(e.b, v[:]...)
	}
}

// dec reads from a byte slice; the first error sticks and later reads
// return zero values, so callers check err once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() { d.err = errDecode; d.b = nil }

func (d *dec) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) u16() uint16 {
	if d.err != nil || len(d.b) < 2 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *dec) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	// A last byte of zero after others is a longer spelling of a smaller
	// number: refuse it, a body has one encoding.
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length or count and checks it against limit.
func (d *dec) count(limit int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(limit) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *dec) bytes(limit int) []byte {
	n := d.count(limit)
	if d.err != nil || len(d.b) < n {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) string(limit int) string { return string(d.bytes(limit)) }

func (d *dec) addr() netip.Addr {
	switch d.byte() {
	case 4:
		if len(d.b) < 4 {
			d.fail()
			return netip.Addr{}
		}
		a := netip.AddrFrom4([4]byte(d.b[:4]))
		d.b = d.b[4:]
		return a
	case 6:
		if len(d.b) < 16 {
			d.fail()
			return netip.Addr{}
		}
		a := netip.AddrFrom16([16]byte(d.b[:16]))
		d.b = d.b[16:]
		if a.Is4In6() {
			d.fail() // canonical form is the 4-byte one
		}
		return a
	}
	d.fail()
	return netip.Addr{}
}

// end fails unless every byte was consumed.
func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return d.err
}
