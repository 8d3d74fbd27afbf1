// Package snowflake is the bit layout of zkpost's 64-bit IDs and their epoch: how an ID is
// composed, decoded and parsed. guid issues IDs in this layout; anything that only reads them
// (postsvc's created_at) imports this package instead of guid's server. It imports nothing of
// ours.
//
//	bit 63      unused (always 0, so an ID is a positive int64)
//	bits 62–22  41 bits: milliseconds since 2021-06-01T00:00:00Z (Epoch), good until 2090
//	bits 21–17  5 bits: datacenter (0–31)
//	bits 16–12  5 bits: worker (0–31)
//	bits 11–0   12 bits: sequence within the millisecond (0–4095)
package snowflake

import (
	"errors"
	"time"
)

// Bit widths and positions of the ID fields.
const (
	SequenceBits   = 12
	WorkerBits     = 5
	DatacenterBits = 5
	TimestampBits  = 41

	WorkerShift     = SequenceBits
	DatacenterShift = SequenceBits + WorkerBits
	TimestampShift  = SequenceBits + WorkerBits + DatacenterBits

	SequenceMask   = 1<<SequenceBits - 1   // 0xfff
	WorkerMask     = 1<<WorkerBits - 1     // 0x1f
	DatacenterMask = 1<<DatacenterBits - 1 // 0x1f
	TimestampMask  = 1<<TimestampBits - 1

	// MaxWorkers is the number of worker ids per datacenter (0–31).
	MaxWorkers = WorkerMask + 1
	// MaxDatacenters is the number of datacenters (0–31).
	MaxDatacenters = DatacenterMask + 1
	// MaxBatch is the most IDs one request may ask for: one millisecond's worth.
	MaxBatch = SequenceMask + 1
)

// EpochMs is the epoch, 2021-06-01T00:00:00Z, in Unix milliseconds.
const EpochMs int64 = 1622505600000

// Epoch is EpochMs as a time.
var Epoch = time.UnixMilli(EpochMs).UTC()

// ErrInvalidID means a string is not a decimal ID of this layout.
var ErrInvalidID = errors.New("not a valid guid")

// Compose builds an ID from its fields; ms counts milliseconds since Epoch. Out-of-range fields
// are masked, so callers validate first.
func Compose(ms int64, dc, worker, seq int) uint64 {
	return uint64(ms)&TimestampMask<<TimestampShift |
		uint64(dc)&DatacenterMask<<DatacenterShift |
		uint64(worker)&WorkerMask<<WorkerShift |
		uint64(seq)&SequenceMask
}

// Decoded is an ID split into its fields.
type Decoded struct {
	ID         uint64
	Ms         int64 // milliseconds since Epoch
	Datacenter int
	Worker     int
	Sequence   int
}

// UnixMs returns the ID's timestamp in Unix milliseconds.
func (d Decoded) UnixMs() int64 { return d.Ms + EpochMs }

// Time returns the ID's timestamp in UTC.
func (d Decoded) Time() time.Time { return time.UnixMilli(d.UnixMs()).UTC() }

// Decode splits id into its fields.
func Decode(id uint64) Decoded {
	return Decoded{
		ID:         id,
		Ms:         int64(id >> TimestampShift & TimestampMask),
		Datacenter: int(id >> DatacenterShift & DatacenterMask),
		Worker:     int(id >> WorkerShift & WorkerMask),
		Sequence:   int(id & SequenceMask),
	}
}

// ParseID parses a decimal ID as clients send it: ASCII digits only (no sign, space or
// exponent), at most 19 of them, and below 2^63 since the sign bit is never set. It takes the
// bytes of a larger answer as they are, without a copy into a string.
func ParseID[T ~string | ~[]byte](s T) (uint64, error) {
	if len(s) == 0 || len(s) > 19 {
		return 0, ErrInvalidID
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, ErrInvalidID
		}
		n = n*10 + uint64(c-'0') // 19 digits cannot overflow uint64
	}
	if n >= 1<<63 {
		return 0, ErrInvalidID
	}
	return n, nil
}
