package postsvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxWriteBatch bounds the posts of one pipelined cache write.
const maxWriteBatch = 64

// postWrites groups the cache writes of concurrent posts to one shard (coalesce.go): the posts
// acknowledged while one pipeline is in flight go together in the next, so under load a post
// costs the shard and this process a share of one round trip. Each post keeps its own commands
// and its own answer; nothing here needs atomicity (coverage.go's addPost says why).
type postWrites struct {
	sh      *shard
	timeout time.Duration
	batches coalescer[*postWrite]
}

func newPostWrites(sh *shard, timeout time.Duration) *postWrites {
	w := &postWrites{sh: sh, timeout: timeout}
	w.batches = coalescer[*postWrite]{max: maxWriteBatch, send: w.send}
	return w
}

// postWrite is one post waiting for its pipeline.
type postWrite struct {
	uid, id   uint64
	body      []byte
	ttl       time.Duration
	err       error // the cache write's
	published error // the PUBLISH's, for the post's streams
	n         int64 // the list's length after the add
	done      chan struct{}
}

// write makes the post visible and publishes it, and returns the list's length after the add
// and the publish's outcome. err is the cache write's: the post may be missing from the list.
func (w *postWrites) write(ctx context.Context, pw *postWrite) (n int64, published error, err error) {
	pw.done = make(chan struct{})
	w.batches.add(pw)
	select {
	case <-pw.done:
		return pw.n, pw.published, pw.err
	case <-ctx.Done():
		err := fmt.Errorf("caching post %d on %s: %w", pw.id, w.sh.name, ctx.Err())
		return 0, err, err
	}
}

// postCmds are the replies of one post's commands in a batch.
type postCmds struct {
	cached  []redis.Cmder
	card    *redis.IntCmd
	publish *redis.IntCmd
}

func (w *postWrites) send(batch []*postWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	cmds := make([]postCmds, len(batch))
	_, perr := w.sh.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pw := range batch {
			cmds[i] = queueAddPost(ctx, p, pw)
		}
		return nil
	})
	for i, pw := range batch {
		pw.err, pw.published = cmds[i].outcome(perr)
		if pw.err != nil {
			pw.err = fmt.Errorf("caching post %d on %s: %w", pw.id, w.sh.name, pw.err)
		} else {
			pw.n = cmds[i].card.Val()
		}
		close(pw.done)
	}
}

// outcome returns the first error of the post's cache commands, and its PUBLISH's; perr (the
// pipeline's) stands for a reply that never came.
func (c postCmds) outcome(perr error) (cached, published error) {
	for _, cmd := range c.cached {
		if cached = cmd.Err(); cached != nil {
			break
		}
	}
	if cached == nil {
		cached = c.card.Err()
	}
	published = c.publish.Err()
	if perr != nil && !errors.Is(perr, redis.Nil) {
		if cached == nil {
			cached = perr
		}
		if published == nil {
			published = perr
		}
	}
	return cached, published
}
