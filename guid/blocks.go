package guid

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// blocks hands out ids fetched in batches. Calls that find no fresh spare id wait together; one
// request at a time asks a server for as many ids as there are waiters, plus spares for the
// calls that follow: as many as were handed out, at the rate seen since the previous request, in
// spareShare of maxAge (up to spareMax), so that under a steady load the spares run out just
// before they would age out and each request serves about rate × maxAge calls. A spare id older
// than maxAge is dropped, never handed out: an id's timestamp is its post's created_at, which
// must stay within a few ms of the write. Every id is handed out at most once (taken from the
// slice under the lock); ids dropped or held by a caller whose context ended are simply unused.
// guidd never issues an id twice, across failovers too (its worker-id lease), so ids from
// different servers or requests never collide.
type blocks struct {
	spareMax int
	maxAge   time.Duration

	mu       sync.Mutex
	spare    []uint64
	fetched  time.Time // when the request that returned spare was sent
	waiters  []chan idResult
	fetching bool
	want     int       // spares to ask for next time
	used     int       // ids handed out since the last request was sent
	since    time.Time // when it was sent
}

// spareShare is the part of maxAge the spares are meant to last: the rest is slack for a rate
// that rises and for the next request's round trip.
const spareShare = 0.75

// planSpares sets want from the rate at which ids were handed out since the last request, and
// starts a new count. Called with b.mu held, when a request is about to be sent at now.
func (b *blocks) planSpares(now time.Time) {
	if el := now.Sub(b.since); !b.since.IsZero() && el > 0 {
		rate := float64(b.used) / el.Seconds()
		b.want = min(b.spareMax, int(rate*b.maxAge.Seconds()*spareShare))
	}
	b.used, b.since = 0, now
}

type idResult struct {
	id  uint64
	err error
}

// blockWait bounds one batch request across every server.
const blockWait = 2 * time.Second

func (c *Client) nextFromBlock(ctx context.Context) (uint64, error) {
	b := c.blocks
	ch := make(chan idResult, 1)
	b.mu.Lock()
	if len(b.spare) > 0 && c.now().Sub(b.fetched) <= b.maxAge {
		id := b.spare[0]
		b.spare = b.spare[1:]
		b.used++
		b.mu.Unlock()
		return id, nil
	}
	b.spare = nil
	b.waiters = append(b.waiters, ch)
	start := !b.fetching
	b.fetching = true
	b.mu.Unlock()
	if start {
		go c.fill()
	}
	select {
	case r := <-ch:
		return r.id, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("getting a guid: %w", ctx.Err())
	}
}

// fill serves the waiters, one batch request at a time, until none is left.
func (c *Client) fill() {
	b := c.blocks
	for {
		b.mu.Lock()
		waiters := b.waiters
		b.waiters = nil
		if len(waiters) == 0 {
			b.fetching = false
			b.mu.Unlock()
			return
		}
		// The spares' age counts from before the request: their ids cannot be older than that,
		// and the clock is read before any waiter is answered (a waiter answered first could see
		// time pass before the spares were stamped, and take a stale one for fresh).
		asked := c.now()
		b.planSpares(asked)
		n := min(MaxBatch, len(waiters)+b.want)
		b.mu.Unlock()
		ids, err := c.nextN(n)
		b.mu.Lock()
		for i, w := range waiters {
			switch {
			case err != nil:
				w <- idResult{err: err}
			case i < len(ids):
				b.used++
				w <- idResult{id: ids[i]}
			default: // more waiters than MaxBatch: the rest wait for the next request
				b.waiters = append(b.waiters, w)
			}
		}
		if err == nil && len(ids) > len(waiters) {
			b.spare, b.fetched = ids[len(waiters):], asked
		}
		b.mu.Unlock()
	}
}

// nextN asks the servers, round robin, for n ids.
func (c *Client) nextN(n int) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), blockWait)
	defer cancel()
	servers := c.nodes.Candidates()
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	var errs []error
	for _, hostport := range servers {
		if ctx.Err() != nil {
			break
		}
		ids, err := c.fetch(ctx, hostport, n)
		if err == nil {
			return ids, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", hostport, err))
	}
	return nil, fmt.Errorf("getting %d guids from %d servers: %w", n, len(servers), errors.Join(errs...))
}
