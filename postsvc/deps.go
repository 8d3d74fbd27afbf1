package postsvc

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/the-red/zkpost/guid/snowflake"
	"github.com/the-red/zkpost/post"
)

// IDSource hands out post ids (guid.Client in postsvcd).
type IDSource interface {
	Next(ctx context.Context) (uint64, error)
}

// Previewer fetches the link preview of a URL (scrap.Client in postsvcd).
type Previewer interface {
	Scrap(ctx context.Context, rawURL string) (json.RawMessage, error)
}

// Queue takes a post for write-back. Enqueue returns nil only once the job is durably in the queue
// Redis (queue.Enqueuer in postsvcd).
type Queue interface {
	Enqueue(ctx context.Context, p post.Post) error
}

// Primary writes posts to the database primary (mysql.Store's Upsert in postsvcd); only the
// write-through mode uses it. Upsert returns nil once the rows committed.
type Primary interface {
	Upsert(ctx context.Context, posts []post.Post) error
}

// Store reads persisted posts (a replica, or the primary when no replica is healthy).
type Store interface {
	// List returns up to limit posts of userID with id ≤ maxID (0: no bound), newest first.
	List(ctx context.Context, userID, maxID uint64, limit int) ([]post.Post, error)
	// Get returns one post, or ErrNotFound.
	Get(ctx context.Context, postID uint64) (post.Post, error)
}

// ErrNotFound is what a Store returns for a post it does not hold.
var ErrNotFound = errors.New("post not found")

// Check is one readiness condition: OK returns nil when it holds, else the reason.
type Check struct {
	Name string
	OK   func() error
}

// CreatedAt returns the creation time encoded in a post id: the layout and epoch are guid's
// (guid/snowflake), the one source both read.
func CreatedAt(id uint64) time.Time { return snowflake.Decode(id).Time() }
