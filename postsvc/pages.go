package postsvc

import (
	"encoding/json"
	"sync"
	"time"
)

// pageCache keeps, in process, timeline pages that were served from Redis alone, so that a warm
// page costs one GET of its list's token instead of a list read and an MGET. A kept page is served
// only while the ring version, the list's token (coverage.go: replaced by every write and fill,
// deleted with the marker) and the marker's remaining TTL at the time of the read all still hold;
// any cache error sends the request to the database as before, never to a kept page. Its size is
// bounded by --page-cache entries; past it, an arbitrary entry makes room.
type pageCache struct {
	max int // 0: nothing is kept
	mu  sync.RWMutex
	m   map[pageKey]*keptPage
}

// pageKey is one page request: user, f (0: the first page) and limit.
type pageKey struct {
	uid, from uint64
	limit     int
}

// keptPage is a page and what it was proven under. It is never modified once kept. (A page
// built by a merge travels in the same struct, unkept, without version, token or body.)
type keptPage struct {
	version int64     // ring version
	token   string    // plv:<uid> at the read
	until   time.Time // when the marker that proved it enters its refresh window (timeline.go's keptFor)
	posts   []json.RawMessage
	next    uint64
	body    []byte // the API's JSON document of the page
}

func newPageCache(max int) *pageCache {
	return &pageCache{max: max, m: map[pageKey]*keptPage{}}
}

func (c *pageCache) get(k pageKey) *keptPage {
	if c.max == 0 {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *pageCache) put(k pageKey, p *keptPage) {
	if c.max == 0 || p.token == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = p
}
