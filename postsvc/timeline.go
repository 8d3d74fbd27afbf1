package postsvc

// Timelines and docs/failure-semantics.md §4: a page is complete and correctly ordered whatever
// the cache holds. A page request, top to bottom: the page kept in process if its list's token is
// unchanged (pages.go); else one atomic read of the list (coverage.go) and, when its marker proves
// the page complete, the bodies in one MGET; else a merge with the database, written back
// (coverage.go's fill). Which of these may answer is coverage.go's decision.

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/post"
)

// Page returns up to q.Limit posts of q.UserID with id ≤ q.MaxID, newest first, in their client
// JSON form (cached bodies pass through without a decode and re-encode), and the id where the next
// page starts (0 when there is none).
func (s *Service) Page(ctx context.Context, q listQuery) ([]json.RawMessage, uint64, error) {
	p, err := s.page(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	return p.posts, p.next, nil
}

// PageJSON is Page as the API's JSON document; a kept page's is rendered once. A page kept in
// process is checked under ctx as it is (its one wait, for the list's token, is bounded by the
// token batch's own cache timeout); only a page read the full way runs under bound(ctx), so the
// caller's per-request deadline costs nothing on a warm page.
func (s *Service) PageJSON(ctx context.Context, bound func(context.Context) (context.Context, context.CancelFunc), q listQuery) ([]byte, error) {
	view, sh, kept, keptErr := s.lookup(ctx, q)
	if kept != nil {
		return kept.body, nil
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	p, err := s.read(ctx, q, view, sh, keptErr)
	if err != nil {
		return nil, err
	}
	if p.body != nil {
		return p.body, nil
	}
	return appendPage(nil, p.posts, p.next), nil
}

func (s *Service) page(ctx context.Context, q listQuery) (*keptPage, error) {
	view, sh, kept, err := s.lookup(ctx, q)
	if kept != nil {
		return kept, nil
	}
	return s.read(ctx, q, view, sh, err)
}

// lookup returns the ring view, q's shard under it (nil: none) and the page kept in process for q
// when it still holds, else nil and the error of its token check (nil when none was needed).
func (s *Service) lookup(ctx context.Context, q listQuery) (*ringView, *shard, *keptPage, error) {
	view := s.cache.view()
	sh := view.shardFor(listKey(q.UserID))
	if sh == nil {
		return view, nil, nil, nil
	}
	kept, err := s.keptPage(ctx, sh, view, pageKey{uid: q.UserID, from: q.MaxID, limit: q.Limit})
	if kept != nil {
		s.metrics.listKept.Inc()
	}
	return view, sh, kept, err
}

// read reads q's page from the cache's list (and the database when it must), keeping it in
// process when the cache alone proved it; sh is q's shard under view (nil: none), keptErr the
// error of the kept page's token check, which sends the read straight to the database.
func (s *Service) read(ctx context.Context, q listQuery, view *ringView, sh *shard, keptErr error) (*keptPage, error) {
	if sh == nil {
		s.metrics.dbFallbacks.WithLabelValues("no_shard").Inc()
		return s.mergedPage(ctx, q, nil, view, listRead{})
	}
	key := pageKey{uid: q.UserID, from: q.MaxID, limit: q.Limit}
	var r listRead
	err := keptErr
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
		r, err = s.cov.read(cctx, sh, q.UserID, q.MaxID, q.Limit+1)
		cancel()
	}
	if err != nil {
		s.metrics.cacheOp("list", "error")
		s.metrics.dbFallbacks.WithLabelValues("cache_error").Inc()
		s.log.Debug("cache read failed", "shard", sh.name, "err", err)
		return s.mergedPage(ctx, q, nil, view, listRead{})
	}
	ids, next, ok := r.servable(view.version, q.Limit)
	if !ok {
		s.metrics.cacheOp("list", "miss")
		s.metrics.dbFallbacks.WithLabelValues("not_covered").Inc()
		return s.mergedPage(ctx, q, sh, view, r)
	}
	s.metrics.cacheOp("list", "hit")
	s.maybeRefresh(q, view, r.markerTL)
	posts, missed, complete, err := s.bodies(ctx, sh, ids, nil)
	if err != nil {
		return nil, err
	}
	s.putBodies(ctx, sh, q.UserID, missed)
	keep := s.keptFor(r)
	p := &keptPage{version: view.version, token: r.token, until: s.now().Add(keep), posts: posts, next: next}
	if complete && keep > 0 {
		p.body = appendPage(nil, posts, next)
		s.pages.put(key, p)
	}
	return p, nil
}

// appendPage writes {"posts":[…],"next_id":"<id>"|null} around bodies already in client JSON:
// json.Marshal would validate and compact every one of them again.
func appendPage(b []byte, posts []json.RawMessage, next uint64) []byte {
	n := len(b) + 64
	for _, p := range posts {
		n += len(p) + 1
	}
	b = slices.Grow(b, n)
	b = append(b, `{"posts":[`...)
	for i, p := range posts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p...)
	}
	b = append(b, `],"next_id":`...)
	if next == 0 {
		return append(b, "null}"...)
	}
	b = append(b, '"')
	b = strconv.AppendUint(b, next, 10)
	return append(b, `"}`...)
}

// keptPage returns the page kept in process for key when its list has not changed since (same
// ring version, same token, marker not yet expired), else nil; an error when the shard did not
// answer, so that the caller goes to the database without waiting on the shard again.
func (s *Service) keptPage(ctx context.Context, sh *shard, view *ringView, key pageKey) (*keptPage, error) {
	p := s.pages.get(key)
	if p == nil || p.version != view.version || !s.now().Before(p.until) {
		return nil, nil
	}
	tok, err := sh.tokens.get(ctx, key.uid)
	if err != nil || tok != p.token {
		return nil, err
	}
	return p, nil
}

// keptFor is how long a page read under r may be kept: no longer than the marker that proved it,
// and not into the marker's last refreshAhead (refresh.go), so that a list read sees the marker
// age and renews it; the page read then is kept again once the renewed marker is seen. Where in
// the first half of that window a kept page ends is random, so that of the instances keeping a
// user's page usually one renews the marker and the others find it renewed.
func (s *Service) keptFor(r listRead) time.Duration {
	if r.markerTL <= 0 {
		return 0
	}
	ahead := s.refreshAhead()
	return min(r.markerTL, s.cfg.CoverageTTL) - ahead + rand.N(ahead/2+1)
}

// mergedPage builds the page from the database and what the cache had, and writes it back.
func (s *Service) mergedPage(ctx context.Context, q listQuery, sh *shard, view *ringView, r listRead) (*keptPage, error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	rows, err := s.store.List(dctx, q.UserID, q.MaxID, q.Limit+1)
	cancel()
	if err != nil {
		s.log.Warn("db list failed", "user_id", q.UserID, "err", err)
		return nil, httpapi.ErrUnavailable
	}
	fromDB, dbIDs := ownRows(rows, q)
	merged := mergeDesc(r.ids, dbIDs)
	page, next := merged, uint64(0)
	if len(merged) > q.Limit {
		page, next = merged[:q.Limit], merged[q.Limit]
	}
	posts, missed, _, err := s.bodies(ctx, sh, page, fromDB)
	if err != nil {
		return nil, err
	}
	if sh == nil {
		return &keptPage{posts: posts, next: next}, nil
	}
	for _, id := range dbIDs {
		if _, listed := slices.BinarySearchFunc(r.ids, id, newestFirst); !listed {
			missed[id] = fromDB[id]
		}
	}
	x := sawDownTo(rows, r.ids, q.Limit)
	ids := idsAtLeast(merged, x)
	if r.below(ids, s.cfg.ListMax) {
		return &keptPage{posts: posts, next: next}, nil // a page below what the cache holds
	}
	settled := s.now().Sub(view.since) >= s.cfg.Settle
	s.fill(ctx, sh, merge{uid: q.UserID, version: view.version, from: q.MaxID, claim: settled, x: x,
		listExisted: r.exists, ids: ids, bodies: missed})
	return &keptPage{posts: posts, next: next}, nil
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

// mergeDesc merges two id lists into one, newest first, without duplicates.
func mergeDesc(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	out = append(append(out, a...), b...)
	slices.SortFunc(out, newestFirst)
	return slices.Compact(out)
}

func newestFirst(x, y uint64) int {
	switch {
	case x > y:
		return -1
	case x < y:
		return 1
	}
	return 0
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

// fill writes a merge back into sh; failure only costs the next reader another merge.
func (s *Service) fill(ctx context.Context, sh *shard, m merge) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
	defer cancel()
	if err := s.cov.fill(cctx, sh, m); err != nil {
		s.metrics.cacheOp("fill", "error")
		s.log.Debug("cache fill failed", "shard", sh.name, "err", err)
		return
	}
	s.metrics.cacheOp("fill", "ok")
}

// putBodies caches bodies the cache lacked.
func (s *Service) putBodies(ctx context.Context, sh *shard, uid uint64, bodies map[uint64][]byte) {
	if len(bodies) > 0 {
		s.fill(ctx, sh, merge{uid: uid, bodies: bodies})
	}
}

// bodies returns the posts of ids in order: the cached bodies (one MGET), else the database rows
// at hand, else one database read each. missed are the bodies the cache lacked; complete is false
// when a post was found nowhere (its cached body expired before it was persisted: left out and
// logged). Cached bodies are served as they are: every writer (a write, a fill) stores
// json.Marshal's output, so they are not validated again on each read.
func (s *Service) bodies(ctx context.Context, sh *shard, ids []uint64, fromDB map[uint64][]byte) (posts []json.RawMessage, missed map[uint64][]byte, complete bool, err error) {
	cached := s.cachedBodies(ctx, sh, ids, fromDB)
	posts, missed, complete = make([]json.RawMessage, 0, len(ids)), map[uint64][]byte{}, true
	for i, id := range ids {
		if b := cached[i]; isObjectFrame(b) {
			posts = append(posts, b)
			continue
		}
		b, ok := fromDB[id]
		if !ok {
			if b, err = s.storedBody(ctx, id); err != nil {
				return nil, nil, false, err
			}
		}
		if b == nil {
			complete = false
			continue
		}
		posts = append(posts, b)
		missed[id] = b
	}
	return posts, missed, complete, nil
}

// cachedBodies returns the cached body of each of ids not in fromDB (nil where there is none).
func (s *Service) cachedBodies(ctx context.Context, sh *shard, ids []uint64, fromDB map[uint64][]byte) [][]byte {
	out := make([][]byte, len(ids))
	var want []uint64
	var at []int
	for i, id := range ids {
		if _, ok := fromDB[id]; !ok {
			want, at = append(want, id), append(at, i)
		}
	}
	if sh == nil || len(want) == 0 {
		return out
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
	got, err := sh.posts(cctx, want)
	cancel()
	if err != nil {
		s.metrics.cacheOp("post_bodies", "error")
		return out
	}
	for j, b := range got {
		out[at[j]] = b
	}
	return out
}

// storedBody reads one post from the database: nil when it is not there.
func (s *Service) storedBody(ctx context.Context, id uint64) ([]byte, error) {
	s.metrics.dbFallbacks.WithLabelValues("post_body").Inc()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	p, err := s.store.Get(dctx, id)
	cancel()
	if errors.Is(err, ErrNotFound) {
		s.log.Warn("listed post found nowhere", "post_id", id)
		return nil, nil
	}
	if err != nil {
		s.log.Warn("db read failed", "post_id", id, "err", err)
		return nil, httpapi.ErrUnavailable
	}
	b, err := json.Marshal(p)
	if err != nil {
		s.log.Error("encoding post", "post_id", id, "err", err)
		return nil, nil
	}
	return b, nil
}

// isObjectFrame reports whether b looks like one JSON object: the cheap check a cached body gets
// on each read (a truncated or foreign value is treated as missing), instead of json.Valid.
func isObjectFrame(b []byte) bool {
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}'
}
