package postsvc

// Timelines and docs/failure-semantics.md §4: a page is complete and correctly ordered whatever
// the cache holds.
//
// pl:<uid> holds ids only ever added (by writes and by merges) and removed oldest-first by trims.
// It can be missing, partial (cold, or a write's cache step failed), trimmed, or stale (built under
// another ring while the user's writes went to another shard). So beside it, plc:<uid> records
// "<ring version>:<X>": under that ring version, the list holds every post of the user with id ≥ X.
//
//   - A page (ids ≤ f) is served from Redis alone when the marker's version is the current ring's
//     (any change of R/cache/nodes invalidates every marker: the reference's lists never expired
//     across shard changes) and the page's limit+1 ids all lie at or above X — or X is 0 (the list
//     holds everything) and the list runs out first.
//   - Otherwise the cache's top limit+1 ids ≤ f are merged with the database's top limit+1, the
//     merged page is returned, and its ids are ZADDed back with the new marker: X = the lowest id
//     down to which both sources were read in full (0 when both ran out), recorded outright for a
//     first page and as an extension of a marker that already reaches f for a later one.
//   - A merge never deletes: a write landing during a rebuild is ZADDed and stays. Trims raise X to
//     the oldest id kept whenever the list is full, in the same Lua step. A marker whose list vanished (expired, evicted) is
//     ignored, and a merge does not claim coverage when the list vanished under it.
//
// Posts in flight: a post whose job is queued but not yet persisted is in the list only if its
// write cached it there. Under the current ring that holds unless the cache step failed — then the
// write deletes the marker, at once or, when the shard is cut off, as soon as it answers again
// (repair.go). A post cached on another shard under an earlier ring does not; so for
// --coverage-settle after this process installs a ring (a bound on the write-back lag), merges
// claim no coverage and every page is merged with the database. What remains — a crash between
// enqueue and cache write, a shard losing its data without redismon noticing, write-back lagging
// past the settle time — can hide a post from cache-only pages until the marker's TTL
// (--coverage-ttl) ends and the next read merges with the database again.

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/post"
)

// Page returns up to q.Limit posts of q.UserID with id ≤ q.MaxID, newest first, in their client
// JSON form (cached bodies pass through without a decode and re-encode), and the id where the next
// page starts (0 when there is none).
func (s *Service) Page(ctx context.Context, q listQuery) ([]json.RawMessage, uint64, error) {
	view := s.cache.view()
	sh := view.shardFor(listKey(q.UserID))
	var cached cachedPage
	if sh == nil {
		s.metrics.dbFallbacks.WithLabelValues("no_shard").Inc()
	} else {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
		var err error
		cached, err = sh.readPage(cctx, q.UserID, q.MaxID, q.Limit+1)
		cancel()
		if err != nil {
			s.metrics.cacheOp("list", "error")
			s.metrics.dbFallbacks.WithLabelValues("cache_error").Inc()
			s.log.Debug("cache read failed", "shard", sh.name, "err", err)
			sh, cached = nil, cachedPage{}
		} else if ids, next, ok := servable(cached, view.version, q.Limit); ok {
			s.metrics.cacheOp("list", "hit")
			posts, err := s.bodies(ctx, sh, q.UserID, ids, cached.bodies, nil)
			return posts, next, err
		} else {
			s.metrics.cacheOp("list", "miss")
			s.metrics.dbFallbacks.WithLabelValues("not_covered").Inc()
		}
	}
	return s.mergedPage(ctx, q, sh, view, cached)
}

// servable tells whether the cached ids alone are the true page, and returns it.
func servable(c cachedPage, version int64, limit int) (ids []uint64, next uint64, ok bool) {
	if !c.cov.ok || c.cov.version != version {
		return nil, 0, false
	}
	if len(c.ids) > limit && c.ids[limit] >= c.cov.x {
		return c.ids[:limit], c.ids[limit], true
	}
	if len(c.ids) <= limit && c.cov.x == 0 {
		return c.ids, 0, true
	}
	return nil, 0, false
}

// mergedPage builds the page from the database and what the cache had, and writes it back.
func (s *Service) mergedPage(ctx context.Context, q listQuery, sh *shard, view *ringView, cached cachedPage) ([]json.RawMessage, uint64, error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	rows, err := s.store.List(dctx, q.UserID, q.MaxID, q.Limit+1)
	cancel()
	if err != nil {
		s.log.Warn("db list failed", "user_id", q.UserID, "err", err)
		return nil, 0, httpapi.ErrUnavailable
	}
	fromDB, dbIDs := ownRows(rows, q)
	merged := mergeDesc(cached.ids, dbIDs)
	page, next := merged, uint64(0)
	if len(merged) > q.Limit {
		page, next = merged[:q.Limit], merged[q.Limit]
	}
	posts, err := s.bodies(ctx, sh, q.UserID, page, cached.bodies, fromDB)
	if err != nil || sh == nil {
		return posts, next, err
	}
	x := mergeSawDownTo(rows, cached.ids, q.Limit)
	settled := s.now().Sub(view.since) >= s.cfg.Settle
	s.fill(ctx, sh, fillArgs{uid: q.UserID, version: view.version, from: q.MaxID, claim: settled, newX: x,
		listExisted: cached.exists, ids: idsAtLeast(merged, x), bodies: missing(fromDB, cached.bodies)})
	return posts, next, nil
}

// ownRows encodes the rows of q's user at or below q.MaxID, newest first.
func ownRows(rows []post.Post, q listQuery) (bodies map[uint64][]byte, ids []uint64) {
	bodies = make(map[uint64][]byte, len(rows))
	ids = make([]uint64, 0, len(rows))
	for _, r := range rows {
		if r.UserID != q.UserID || (q.MaxID != 0 && r.ID > q.MaxID) {
			continue // a store bug must not leak another user's post
		}
		body, err := json.Marshal(r)
		if err != nil {
			continue
		}
		bodies[r.ID] = body
		ids = append(ids, r.ID)
	}
	return bodies, ids
}

// mergeSawDownTo returns the x at or above which a merge of up to limit+1 database rows and the
// cached ids saw everything both sources hold: a source that returned more than limit ids was
// seen down to its oldest one read; one that returned fewer ran out, and bounds nothing.
func mergeSawDownTo(rows []post.Post, cachedIDs []uint64, limit int) uint64 {
	x := uint64(0)
	if len(rows) > limit {
		x = max(x, minID(rows))
	}
	if len(cachedIDs) > limit {
		x = max(x, slices.Min(cachedIDs))
	}
	return x
}

func minID(rows []post.Post) uint64 {
	m := rows[0].ID
	for _, r := range rows[1:] {
		m = min(m, r.ID)
	}
	return m
}

// mergeDesc merges two id lists into one, newest first, without duplicates.
func mergeDesc(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	out = append(append(out, a...), b...)
	slices.SortFunc(out, func(x, y uint64) int {
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	return slices.Compact(out)
}

func idsAtLeast(ids []uint64, x uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if id >= x {
			out = append(out, id)
		}
	}
	return out
}

// missing returns the bodies of from that the cache lacked.
func missing(from, cached map[uint64][]byte) map[uint64][]byte {
	out := map[uint64][]byte{}
	for id, b := range from {
		if _, ok := cached[id]; !ok {
			out[id] = b
		}
	}
	return out
}

func (s *Service) fill(ctx context.Context, sh *shard, a fillArgs) {
	a.listMax, a.listTTL, a.covTTL, a.postTTL = s.cfg.ListMax, s.cfg.PostTTL, s.cfg.CoverageTTL, s.cfg.PostTTL
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
	defer cancel()
	if err := sh.fill(cctx, a); err != nil {
		s.metrics.cacheOp("fill", "error")
		s.log.Debug("cache fill failed", "shard", sh.name, "err", err)
		return
	}
	s.metrics.cacheOp("fill", "ok")
}

// bodies returns the posts of ids in order, from the cached bodies, the database rows at hand,
// else one database read each; fetched bodies are put back in the cache. A post found nowhere
// (its cached body expired before it was persisted) is left out and logged.
func (s *Service) bodies(ctx context.Context, sh *shard, uid uint64, ids []uint64, cached, fromDB map[uint64][]byte) ([]json.RawMessage, error) {
	posts := make([]json.RawMessage, 0, len(ids))
	fetched := map[uint64][]byte{}
	for _, id := range ids {
		if b := cached[id]; isJSONObject(b) {
			posts = append(posts, b)
			continue
		}
		if b, ok := fromDB[id]; ok {
			posts = append(posts, b)
			continue
		}
		s.metrics.dbFallbacks.WithLabelValues("post_body").Inc()
		dctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		p, err := s.store.Get(dctx, id)
		cancel()
		if errors.Is(err, ErrNotFound) {
			s.log.Warn("listed post found nowhere", "post_id", id)
			continue
		}
		if err != nil {
			s.log.Warn("db read failed", "post_id", id, "err", err)
			return nil, httpapi.ErrUnavailable
		}
		b, err := json.Marshal(p)
		if err != nil {
			s.log.Error("encoding post", "post_id", id, "err", err)
			continue
		}
		posts = append(posts, b)
		fetched[id] = b
	}
	if sh != nil && len(fetched) > 0 {
		s.fill(ctx, sh, fillArgs{uid: uid, bodies: fetched})
	}
	return posts, nil
}
