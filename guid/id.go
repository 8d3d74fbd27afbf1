package guid

import "github.com/the-red/zkpost/guid/snowflake"

// The ID layout lives in guid/snowflake, so that code that only reads IDs needs no guid server;
// these names keep it in guid's own API.

// Bit widths and positions of the ID fields.
const (
	SequenceBits   = snowflake.SequenceBits
	WorkerBits     = snowflake.WorkerBits
	DatacenterBits = snowflake.DatacenterBits
	TimestampBits  = snowflake.TimestampBits

	WorkerShift     = snowflake.WorkerShift
	DatacenterShift = snowflake.DatacenterShift
	TimestampShift  = snowflake.TimestampShift

	SequenceMask   = snowflake.SequenceMask
	WorkerMask     = snowflake.WorkerMask
	DatacenterMask = snowflake.DatacenterMask
	TimestampMask  = snowflake.TimestampMask

	// MaxWorkers is the number of worker ids per datacenter (0–31).
	MaxWorkers = snowflake.MaxWorkers
	// MaxDatacenters is the number of datacenters (0–31).
	MaxDatacenters = snowflake.MaxDatacenters
	// MaxBatch is the most IDs one request may ask for: one millisecond's worth.
	MaxBatch = snowflake.MaxBatch
)

// EpochMs is the epoch, 2021-06-01T00:00:00Z, in Unix milliseconds.
const EpochMs = snowflake.EpochMs

// Epoch is EpochMs as a time.
var Epoch = snowflake.Epoch

// ErrInvalidID means a string is not a decimal ID of this layout.
var ErrInvalidID = snowflake.ErrInvalidID

// Decoded is an ID split into its fields.
type Decoded = snowflake.Decoded

// Compose builds an ID from its fields; ms counts milliseconds since Epoch. Out-of-range fields
// are masked, so callers validate first.
func Compose(ms int64, dc, worker, seq int) uint64 { return snowflake.Compose(ms, dc, worker, seq) }

// Decode splits id into its fields.
func Decode(id uint64) Decoded { return snowflake.Decode(id) }

// ParseID parses a decimal ID as clients send it (snowflake.ParseID).
func ParseID(s string) (uint64, error) { return snowflake.ParseID(s) }
