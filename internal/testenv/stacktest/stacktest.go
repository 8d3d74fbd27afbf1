// Package stacktest is what the tests of a running stack share (docs/tests.md#the-shared-stack):
// the stack itself (Stack: ZooKeeper, the cache shards, the queue and MariaDB as real processes,
// and our daemons started on them as internal/launch describes), one client of the timeline API,
// the cursor walk every test checks pages with, and the database truth they compare against.
// postsvc's stack of real daemons and redismon's stale-read stack are Stacks; postsvc's in-process
// harness reads timelines through the same client and walk.
package stacktest

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/the-red/zkpost/post"
)

// Page is one timeline page as a client sees it (docs/api.md).
type Page struct {
	Posts  []post.Post `json:"posts"`
	NextID *string     `json:"next_id"`
}

// IDs returns the page's post ids in order.
func (p Page) IDs() []uint64 {
	ids := make([]uint64, len(p.Posts))
	for i, q := range p.Posts {
		ids[i] = q.ID
	}
	return ids
}

// pagePath is the request path of uid's page of up to limit posts from id f (0: the newest).
func pagePath(uid, f uint64, limit int) string {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if f != 0 {
		q.Set("f", strconv.FormatUint(f, 10))
	}
	return fmt.Sprintf("/api/v1/posts/%d?%s", uid, q.Encode())
}

// decodePage decodes a page answered with status; any status but 200 is an error.
func decodePage(status int, body []byte) (Page, error) {
	if status != http.StatusOK {
		return Page{}, fmt.Errorf("status %d: %s", status, body)
	}
	var p Page
	if err := json.Unmarshal(body, &p); err != nil {
		return Page{}, fmt.Errorf("decoding page %s: %w", body, err)
	}
	return p, nil
}

// Client reads timelines from one postsvcd over HTTP.
type Client struct {
	HTTP *http.Client
	Base string // "http://host:port"
}

// Page reads one page.
func (c Client) Page(uid, f uint64, limit int) (Page, error) {
	resp, err := c.HTTP.Get(c.Base + pagePath(uid, f, limit))
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Page{}, fmt.Errorf("reading page: %w", err)
	}
	return decodePage(resp.StatusCode, b)
}

// maxPages bounds a walk, so a cursor that loops fails instead of hanging.
const maxPages = 10000

// Walk follows next_id from uid's newest post to the end, reading pages with page, and returns
// the ids in order. It fails tb on a failed read, a page longer than limit, a short page that
// still has a next_id, a next_id that is not an id, or a walk that does not end.
func Walk(tb testing.TB, uid uint64, limit int, page func(f uint64) (Page, error)) []uint64 {
	tb.Helper()
	var ids []uint64
	f := uint64(0)
	for range maxPages {
		p, err := page(f)
		if err != nil {
			tb.Fatalf("page of user %d at f=%d: %v", uid, f, err)
		}
		if len(p.Posts) > limit {
			tb.Fatalf("page of user %d at f=%d: got %d posts, limit %d", uid, f, len(p.Posts), limit)
		}
		ids = append(ids, p.IDs()...)
		if p.NextID == nil {
			return ids
		}
		if len(p.Posts) < limit {
			tb.Fatalf("page of user %d at f=%d: short page (%d < %d) with next_id %s", uid, f, len(p.Posts), limit, *p.NextID)
		}
		if f, err = strconv.ParseUint(*p.NextID, 10, 64); err != nil {
			tb.Fatalf("next_id %q: %v", *p.NextID, err)
		}
	}
	tb.Fatalf("walk of user %d does not end", uid)
	return nil
}

// Truth returns uid's post ids in db, newest first.
func Truth(tb testing.TB, db *sql.DB, uid uint64) []uint64 {
	tb.Helper()
	rows, err := db.Query("SELECT post_id FROM posts WHERE user_id = ? ORDER BY post_id DESC", uid)
	if err != nil {
		tb.Fatalf("reading the database: %v", err)
	}
	defer rows.Close()
	var ids []uint64
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			tb.Fatalf("reading the database: %v", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("reading the database: %v", err)
	}
	return ids
}
