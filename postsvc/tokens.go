package postsvc

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// maxTokenBatch bounds the keys of one MGET of list tokens.
const maxTokenBatch = 256

// tokenReads coalesces the token reads of concurrent requests to one shard (pages.go's check of
// a kept page): while one MGET is in flight, the requests that arrive wait and go together in the
// next one. A request's MGET is always sent after the request arrived, so it sees every write
// acknowledged before that (read-your-writes); a warm page then costs a share of one round trip
// instead of a round trip of its own. No goroutine runs while no read waits.
type tokenReads struct {
	sh      *shard
	timeout time.Duration
	mu      sync.Mutex
	pending []*tokenRead
	running bool
}

type tokenRead struct {
	uid  uint64
	tok  string
	err  error
	done chan struct{}
}

// get returns uid's list token ("" when there is none), or an error when the shard did not answer
// within the cache timeout.
func (t *tokenReads) get(ctx context.Context, uid uint64) (string, error) {
	r := &tokenRead{uid: uid, done: make(chan struct{})}
	t.mu.Lock()
	t.pending = append(t.pending, r)
	lead := !t.running
	t.running = true
	t.mu.Unlock()
	if lead {
		t.flush()
	}
	select {
	case <-r.done:
		return r.tok, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("reading the token of user %d on %s: %w", uid, t.sh.name, ctx.Err())
	}
}

// flush sends one batch of the waiting reads; while more wait, it hands on to a new goroutine, so
// that the request that started it is not kept sending the batches of others.
func (t *tokenReads) flush() {
	t.mu.Lock()
	batch := t.pending
	if len(batch) > maxTokenBatch {
		batch, t.pending = batch[:maxTokenBatch], batch[maxTokenBatch:]
	} else {
		t.pending = nil
	}
	if len(batch) == 0 {
		t.running = false
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.send(batch)
	t.mu.Lock()
	more := len(t.pending) > 0
	t.running = more
	t.mu.Unlock()
	if more {
		go t.flush()
	}
}

func (t *tokenReads) send(batch []*tokenRead) {
	keys := make([]string, len(batch))
	for i, r := range batch {
		keys[i] = versionKey(r.uid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	vals, err := t.sh.rdb.MGet(ctx, keys...).Result()
	cancel()
	for i, r := range batch {
		switch {
		case err != nil:
			r.err = fmt.Errorf("reading %d list tokens on %s: %w", len(batch), t.sh.name, err)
		case i < len(vals):
			r.tok, _ = vals[i].(string)
		}
		close(r.done)
	}
}
