package guid

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the generator. The HTTP edge maps each to a 503 with its own name.
var (
	// ErrClockBackwards means the clock reads earlier than the last issued ID's millisecond by
	// more than MaxStepBack; it persists until the clock has caught up.
	ErrClockBackwards = errors.New("clock moved backwards")
	// ErrNotPersisted means the next ID's millisecond is not below the bound last stored in
	// ZooKeeper (Generator.SetLimit), so issuing it could collide with the next holder's IDs.
	ErrNotPersisted = errors.New("clock bound not persisted")
	// ErrTimeRange means the clock is before Epoch or past the 41-bit range (year 2090).
	ErrTimeRange = errors.New("clock outside the ID time range")
)

// DefaultMaxStepBack is how far back the clock may step before the generator fails instead of
// waiting.
const DefaultMaxStepBack = 5 * time.Millisecond

// Counters count the generator's waits and failures; one set may be shared by many generators.
type Counters struct {
	OverflowWaits   atomic.Uint64 // sequence spent within a millisecond: waited for the next
	BackwardsWaits  atomic.Uint64 // small backwards step waited out
	BackwardsErrors atomic.Uint64 // ErrClockBackwards returned
}

// Options configure a Generator. The zero value is usable.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits for d (default: spin below a millisecond, time.Sleep above). Tests with a fake
	// clock advance it here.
	Sleep func(d time.Duration)
	// MaxStepBack is the largest backwards clock step waited out (default DefaultMaxStepBack;
	// negative means none).
	MaxStepBack time.Duration
	// FloorUnixMs: no ID gets an earlier millisecond (the stored clock of a leased worker id).
	FloorUnixMs int64
	// Counters, if set, are incremented on waits and clock errors.
	Counters *Counters
}

// Generator issues IDs for one (datacenter, worker) pair. It is safe for concurrent use.
type Generator struct {
	dc, worker  int
	now         func() time.Time
	sleep       func(time.Duration)
	maxStepBack int64 // ms
	counters    *Counters

	mu     sync.Mutex
	lastMs int64 // ms since Epoch of the last ID issued (or floor-1)
	seq    int   // next sequence number within lastMs; MaxBatch when spent
	limit  int64 // ms since Epoch; IDs only below it; 0 = unlimited
}

// NewGenerator returns a generator for datacenter dc and worker, both 0–31.
func NewGenerator(dc, worker int, opts Options) (*Generator, error) {
	if dc < 0 || dc > DatacenterMask || worker < 0 || worker > WorkerMask {
		return nil, fmt.Errorf("datacenter %d, worker %d: want 0–31", dc, worker)
	}
	g := &Generator{dc: dc, worker: worker, now: opts.Now, sleep: opts.Sleep, counters: opts.Counters}
	if g.now == nil {
		g.now = time.Now
	}
	if g.sleep == nil {
		g.sleep = spinSleep
	}
	if g.counters == nil {
		g.counters = &Counters{}
	}
	switch {
	case opts.MaxStepBack == 0:
		g.maxStepBack = DefaultMaxStepBack.Milliseconds()
	case opts.MaxStepBack > 0:
		g.maxStepBack = opts.MaxStepBack.Milliseconds()
	}
	// The floor acts as an already spent millisecond just before it.
	g.lastMs = max(opts.FloorUnixMs-EpochMs, 0) - 1
	g.seq = MaxBatch
	return g, nil
}

// Datacenter returns the generator's datacenter.
func (g *Generator) Datacenter() int { return g.dc }

// Worker returns the generator's worker id.
func (g *Generator) Worker() int { return g.worker }

// SetLimit lets the generator issue IDs with timestamps below unixMs only; 0 lifts the limit.
func (g *Generator) SetLimit(unixMs int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if unixMs == 0 {
		g.limit = 0
		return
	}
	g.limit = max(unixMs-EpochMs, 1)
}

// Seal stops the generator from issuing anything until SetLimit and returns, in Unix
// milliseconds, the earliest timestamp it could still have issued: one past the last.
func (g *Generator) Seal() (nextUnixMs int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit = 1 // below every possible timestamp
	return g.lastMs + 1 + EpochMs
}

// Next returns a new ID.
func (g *Generator) Next() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.reserve(); err != nil {
		return 0, err
	}
	id := Compose(g.lastMs, g.dc, g.worker, g.seq)
	g.seq++
	return id, nil
}

// NextN appends n new IDs, strictly increasing, to dst. The IDs are reserved under one lock, a
// millisecond's worth at a time. On error, dst holds the IDs issued before it.
func (g *Generator) NextN(dst []uint64, n int) ([]uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for n > 0 {
		if err := g.reserve(); err != nil {
			return dst, err
		}
		k := min(n, MaxBatch-g.seq)
		base := Compose(g.lastMs, g.dc, g.worker, 0)
		for s := g.seq; s < g.seq+k; s++ {
			dst = append(dst, base|uint64(s))
		}
		g.seq += k
		n -= k
	}
	return dst, nil
}

// reserve moves lastMs/seq to a millisecond with at least one sequence number left, waiting out
// overflow and small backwards steps. Called with g.mu held.
func (g *Generator) reserve() error {
	for {
		now := g.now().UnixMilli() - EpochMs
		if now < 0 || now > TimestampMask {
			return ErrTimeRange
		}
		switch {
		case now < g.lastMs:
			back := g.lastMs - now
			if back > g.maxStepBack {
				g.counters.BackwardsErrors.Add(1)
				return ErrClockBackwards
			}
			g.counters.BackwardsWaits.Add(1)
			g.sleep(time.Duration(back) * time.Millisecond)
			continue
		case now == g.lastMs && g.seq >= MaxBatch:
			g.counters.OverflowWaits.Add(1)
			g.sleep(g.untilNextMs())
			continue
		case now > g.lastMs:
			if g.limit != 0 && now >= g.limit {
				return ErrNotPersisted
			}
			g.lastMs, g.seq = now, 0
		}
		if g.limit != 0 && g.lastMs >= g.limit {
			return ErrNotPersisted
		}
		return nil
	}
}

// untilNextMs returns the time left until the millisecond after lastMs starts.
func (g *Generator) untilNextMs() time.Duration {
	next := time.UnixMilli(g.lastMs + 1 + EpochMs)
	return max(next.Sub(g.now()), time.Microsecond)
}

// spinSleep waits d: a timer sleep overshoots sub-millisecond waits by tens of microseconds or
// more, which would cap a saturated worker well below 4,096 IDs/ms, so short waits yield instead.
func spinSleep(d time.Duration) {
	if d >= time.Millisecond {
		time.Sleep(d)
		return
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		runtime.Gosched()
	}
}
