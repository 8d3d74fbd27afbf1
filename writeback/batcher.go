package writeback

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/the-red/zkpost/internal/post"
)

// errStopped is returned to writers once the batcher stopped.
var errStopped = errors.New("write-back batcher stopped")

// commitFunc writes one batch in one statement.
type commitFunc func(ctx context.Context, posts []post.Post) error

// batcher implements group commit: the handlers of many concurrent jobs hand it their posts, it
// writes them with one multi-row statement, and each handler returns only after the statement
// that carried its row committed. A handler's job is acknowledged to the queue only then.
type batcher struct {
	commit  commitFunc
	max     int
	wait    time.Duration
	timeout time.Duration
	now     func() time.Time
	m       *wbMetrics
	// onCommit, when set, sees every committed batch and the commit time (benchmarks).
	onCommit func(posts []post.Post, at time.Time)

	in      chan *request
	stop    chan struct{}
	done    chan struct{}
	batches atomic.Int64 // statements issued
	// base parents every statement's context; abort cancels it.
	base  context.Context
	abort context.CancelFunc
}

type request struct {
	p    post.Post
	done chan error
}

func newBatcher(commit commitFunc, max int, wait, timeout time.Duration, now func() time.Time, m *wbMetrics) *batcher {
	base, abort := context.WithCancel(context.Background())
	return &batcher{commit: commit, max: max, wait: wait, timeout: timeout, now: now, m: m,
		in: make(chan *request, max), stop: make(chan struct{}), done: make(chan struct{}),
		base: base, abort: abort}
}

// write hands p to the next batch and waits until that batch committed or failed. When ctx ends
// first, the row may still commit later; the job is then retried, and the upsert makes the
// second write a no-op.
func (b *batcher) write(ctx context.Context, p post.Post) error {
	r := &request{p: p, done: make(chan error, 1)}
	select {
	case b.in <- r:
	case <-ctx.Done():
		return fmt.Errorf("queueing post %d for commit: %w", p.ID, ctx.Err())
	case <-b.stop:
		return errStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the commit of post %d: %w", p.ID, ctx.Err())
	case <-b.done: // stopped with r still in the channel: no batch will carry it
		select {
		case err := <-r.done:
			return err
		default:
			return errStopped
		}
	}
}

// run commits batches until close is called. It takes the first waiting post, gathers more for
// up to the batch wait or until the batch is full, and commits them together; posts that arrive
// during a commit form the next batch, so batches grow with the load.
func (b *batcher) run() {
	defer close(b.done)
	batch := make([]*request, 0, b.max)
	for {
		select {
		case r := <-b.in:
			batch = append(batch[:0], r)
		case <-b.stop:
			b.failPending()
			return
		}
		batch = b.gather(batch)
		b.flush(batch)
	}
}

func (b *batcher) gather(batch []*request) []*request {
	// Whatever is already waiting joins at once: under load the posts that arrive during one
	// commit make the next batch, with no waiting at all.
	for len(batch) < b.max {
		select {
		case r := <-b.in:
			batch = append(batch, r)
			continue
		default:
		}
		break
	}
	if b.wait <= 0 || len(batch) == b.max {
		return batch
	}
	t := time.NewTimer(b.wait)
	defer t.Stop()
	for len(batch) < b.max {
		select {
		case r := <-b.in:
			batch = append(batch, r)
		case <-t.C:
			return batch
		}
	}
	return batch
}

func (b *batcher) flush(batch []*request) {
	posts := make([]post.Post, len(batch))
	for i, r := range batch {
		posts[i] = r.p
	}
	ctx, cancel := context.WithTimeout(b.base, b.timeout)
	err := b.commit(ctx, posts)
	cancel()
	b.batches.Add(1)
	at := b.now()
	b.m.observeBatch(posts, at, err)
	if err == nil && b.onCommit != nil {
		b.onCommit(posts, at)
	}
	for _, r := range batch {
		r.done <- err
	}
}

// failPending answers writers that queued a post but whose batch never formed.
func (b *batcher) failPending() {
	for {
		select {
		case r := <-b.in:
			r.done <- errStopped
		default:
			return
		}
	}
}

// shutdown stops the batcher after the batch being committed, if any; when ctx ends first, that
// batch's statement is canceled (its jobs fail and stay queued for a retry) and shutdown returns
// without waiting further. Call it once no writer is left (after the worker pool stopped).
func (b *batcher) shutdown(ctx context.Context) error {
	close(b.stop)
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.abort()
		return fmt.Errorf("stopping the batcher: %w", ctx.Err())
	}
}

// close is shutdown without a deadline.
func (b *batcher) close() { _ = b.shutdown(context.Background()) }
