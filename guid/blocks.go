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
// calls that follow (as many as the last request had waiters, up to spareMax). A spare id older
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
	want     int // spares to ask for next time
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
		n := min(MaxBatch, len(waiters)+b.want)
		b.want = min(b.spareMax, len(waiters))
		b.mu.Unlock()
		// The spares' age counts from before the request: their ids cannot be older than that,
		// and the clock is read before any waiter is answered (a waiter answered first could see
		// time pass before the spares were stamped, and take a stale one for fresh).
		asked := c.now()
		ids, err := c.nextN(n)
		b.mu.Lock()
		for i, w := range waiters {
			switch {
			case err != nil:
				w <- idResult{err: err}
			case i < len(ids):
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
