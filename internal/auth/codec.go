package auth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/alexedwards/scs/v2"
)

// SessionValues is the session codec the console's session manager uses. Signed-in sessions
// hold a few strings and integers (user id, sign-in time, role, method), and every request
// decodes its session and encodes it again for the commit, so the format is a small binary
// one rather than gob, which compiles a decoder for every call. The encoding is
// deterministic (keys sorted), so equal data always encodes to equal bytes.
//
// Layout: the magic "TSv1", the deadline in Unix nanoseconds (8 bytes, big endian), the
// number of values (uvarint), then per value its key (uvarint length, bytes), a type byte
// ('s' string, 'i' int64, 'b' bool, 't' time in Unix nanoseconds, 'f' float64) and the
// value (strings as uvarint length and bytes, numbers as 8 bytes big endian, bools as one
// byte). Data that does not start with the magic is decoded as gob, so sessions written
// before the change stay valid.
type SessionValues struct{}

var _ scs.Codec = SessionValues{}

const codecMagic = "TSv1"

// Encode writes deadline and values. A value of any other type than those listed is an
// error: the session holds nothing else.
func (SessionValues) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := make([]byte, 0, 64)
	b = append(b, codecMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(deadline.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		switch v := values[k].(type) {
		case string:
			b = appendString(append(b, 's'), v)
		case int64:
			b = binary.BigEndian.AppendUint64(append(b, 'i'), uint64(v))
		case int:
			b = binary.BigEndian.AppendUint64(append(b, 'i'), uint64(int64(v)))
		case bool:
			c := byte(0)
			if v {
				c = 1
			}
			b = append(b, 'b', c)
		case time.Time:
			b = binary.BigEndian.AppendUint64(append(b, 't'), uint64(v.UnixNano()))
		case float64:
			b = binary.BigEndian.AppendUint64(append(b, 'f'), math.Float64bits(v))
		default:
			return nil, fmt.Errorf("session value %q: type %T cannot be stored", k, v)
		}
	}
	return b, nil
}

// Decode reads what Encode wrote, or gob data written by scs.GobCodec.
func (SessionValues) Decode(b []byte) (time.Time, map[string]any, error) {
	if len(b) < len(codecMagic) || string(b[:len(codecMagic)]) != codecMagic {
		return scs.GobCodec{}.Decode(b)
	}
	d := decoder{b: b[len(codecMagic):]}
	deadline := time.Unix(0, int64(d.uint64()))
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) { // each value takes at least one byte
		return time.Time{}, nil, errCorrupt
	}
	values := make(map[string]any, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.string()
		switch d.byte() {
		case 's':
			values[k] = d.string()
		case 'i':
			values[k] = int64(d.uint64())
		case 'b':
			values[k] = d.byte() == 1
		case 't':
			values[k] = time.Unix(0, int64(d.uint64()))
		case 'f':
			values[k] = math.Float64frombits(d.uint64())
		default:
			d.fail()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return time.Time{}, nil, d.err
	}
	return deadline, values, nil
}

var errCorrupt = errors.New("session data is corrupt")

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder reads the codec's fields; after the first error every read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = errCorrupt, nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
