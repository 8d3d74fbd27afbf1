package postsvc

import (
	"context"
	"fmt"
	"time"
)

// maxTokenBatch bounds the keys of one MGET of list tokens.
const maxTokenBatch = 256

// tokenReads coalesces the token reads of concurrent requests to one shard (pages.go's check of
// a kept page) into one MGET (coalesce.go). A request's MGET is always sent after the request
// arrived, so it sees every write acknowledged before that (read-your-writes); a warm page then
// costs a share of one round trip instead of a round trip of its own.
type tokenReads struct {
	sh      *shard
	timeout time.Duration
	batches coalescer[*tokenRead]
}

func newTokenReads(sh *shard, timeout time.Duration) *tokenReads {
	t := &tokenReads{sh: sh, timeout: timeout}
	t.batches = coalescer[*tokenRead]{max: maxTokenBatch, send: t.send}
	return t
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
	t.batches.add(r)
	select {
	case <-r.done:
		return r.tok, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("reading the token of user %d on %s: %w", uid, t.sh.name, ctx.Err())
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
