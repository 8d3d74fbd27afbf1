// Package postsvc is the post API: it writes posts (an id from guid, a link preview from the URL
// cache or scrap, a durable write-back job, the author's cache shard) and reads timelines from the
// cache shards, merged with the database whenever the cache cannot prove a page complete.
//
// # Write path and docs/failure-semantics.md §1
//
// validate → id → preview → enqueue → cache → acknowledge. The job is enqueued BEFORE the post is
// made visible in the cache: a post the queue refused was never visible, so a 503 leaves nothing
// behind, and a crash between the two steps leaves a durable job whose post appears once persisted.
// The reverse order would let a crash between cache write and enqueue leave a visible post that is
// never persisted. A cache failure after the enqueue is logged and the write still succeeds
// (§5); the author then sees the post once it is persisted (§3). "Durably" means
// on the queue primary's disk and, while a replica is attached, on a replica too, so a queue
// failover cannot lose an acknowledged post (post/queue's package doc). One ambiguity remains, as
// with any remote call: when the queue stops answering after the push was sent, the enqueuer
// tries to withdraw the job; if it cannot prove the job gone (queue.ErrMaybeQueued: the logged
// error says "the job may still be queued"), the client gets 503, yet the post may be persisted later. A client that
// retries then writes a second post.
//
// # Read path and docs/failure-semantics.md §4
//
// See timeline.go: a page is served from Redis alone only when a coverage marker proves the list
// complete over the page's range under the current ring version; otherwise cache and database are
// merged, and the merge is written back.
package postsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/post"
)

// Deps are the collaborators postsvcd's main wires in.
type Deps struct {
	IDs       IDSource
	Previewer Previewer
	Queue     Queue
	Store     Store
	// Primary is the database primary the write-through mode upserts into (unused, and may be
	// nil, in write-back mode).
	Primary  Primary
	Log      *slog.Logger
	Registry *prometheus.Registry
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Ready lists the conditions /readyz reports (ZooKeeper session, endpoints known, ...).
	Ready []Check
}

// Service holds the write and read logic, independent of HTTP.
type Service struct {
	cfg       Config
	ids       IDSource
	preview   Previewer
	queue     Queue
	store     Store
	primary   Primary
	cache     *Cache
	cov       *coverage  // timeline coverage markers (coverage.go)
	pages     *pageCache // pages kept in process (pages.go)
	refreshes refresher  // markers renewed ahead of expiry (refresh.go)
	log       *slog.Logger
	metrics   *serviceMetrics
	now       func() time.Time
}

func newService(cfg Config, d Deps, m *serviceMetrics) *Service {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	return &Service{cfg: cfg, ids: d.IDs, preview: d.Previewer, queue: d.Queue, store: d.Store,
		primary: d.Primary, cache: NewCache(cfg.CacheTimeout, now, d.Log, m),
		cov: newCoverage(cfg, d.Log, m), pages: newPageCache(cfg.PageCache), log: d.Log, metrics: m, now: now}
}

// idWait bounds getting an id (the guid client tries every guidd within it).
const idWait = 2 * time.Second

// Write creates a post and returns it with its JSON (the answer's body, encoded once for the
// cache, the streams and the client). In write-back mode it returns once the post's write-back
// job is durably enqueued; in write-through mode once its row committed on the database primary.
// Either way the cache is written only after that, so no read sees a post that was not stored.
func (s *Service) Write(ctx context.Context, in writeInput) (post.Post, []byte, error) {
	t := s.now()
	ictx, cancel := context.WithTimeout(ctx, idWait)
	id, err := s.ids.Next(ictx)
	cancel()
	s.lap(s.metrics.stageID, &t)
	if err != nil {
		s.log.Warn("guid failed", "err", err)
		return post.Post{}, nil, httpapi.ErrUnavailable.WithMessage("no post id available; retry")
	}
	p := post.Post{ID: id, UserID: in.UserID, Contents: in.Contents, URL: in.URL, CreatedAt: CreatedAt(id)}
	if in.URL != "" {
		p.Scrap = s.linkPreview(ctx, in.URL)
		s.lap(s.metrics.stagePreview, &t)
	}
	body := p.AppendJSON(nil) // its preview was checked to be one JSON object (linkPreview)
	if s.cfg.WriteMode == WriteThrough {
		err = s.writeThrough(ctx, p)
	} else {
		err = s.enqueue(ctx, p)
	}
	s.lap(s.metrics.stageStore, &t)
	if err != nil {
		return post.Post{}, nil, err
	}
	s.cachePost(ctx, p, body)
	s.lap(s.metrics.stageCache, &t)
	return p, body, nil
}

// lap observes on o the time since *t on the service's clock and moves *t to now.
func (s *Service) lap(o prometheus.Observer, t *time.Time) {
	now := s.now()
	o.Observe(now.Sub(*t).Seconds())
	*t = now
}

// enqueue hands p to the write-back queue.
func (s *Service) enqueue(ctx context.Context, p post.Post) error {
	ectx, cancel := context.WithTimeout(ctx, s.cfg.EnqueueWait)
	err := s.queue.Enqueue(ectx, p)
	cancel()
	if err != nil {
		s.metrics.enqueueFails.Inc()
		s.log.Warn("enqueue failed", "post_id", p.ID, "user_id", p.UserID, "err", err)
		return httpapi.ErrUnavailable.WithMessage("the post could not be queued for storage; it was not saved")
	}
	return nil
}

// writeThrough upserts p into the database primary. As with a queue that stops answering, a
// statement that fails without a reply may still have committed: the client gets 503, and the
// post may exist (a retry writes a second post with a new id).
func (s *Service) writeThrough(ctx context.Context, p post.Post) error {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	err := s.primary.Upsert(dctx, []post.Post{p})
	cancel()
	if err != nil {
		s.metrics.writeThroughFails.Inc()
		s.log.Warn("write-through failed", "post_id", p.ID, "user_id", p.UserID, "err", err)
		return httpapi.ErrUnavailable.WithMessage("the post could not be stored; retry")
	}
	return nil
}

// cachePost makes a stored post visible on its author's shard and publishes it to the author's
// streams, in one grouped pipeline (coverage.go's addPost). Failure is logged, never returned: the
// post is durable and will be read from the database once persisted.
func (s *Service) cachePost(ctx context.Context, p post.Post, body []byte) {
	sh := s.cache.view().shardFor(listKey(p.UserID))
	if sh == nil {
		s.metrics.cacheOp("write", "miss")
		s.metrics.published.WithLabelValues("no_shard").Inc()
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
	defer cancel()
	published, err := sh.addPost(cctx, p.UserID, p.ID, body, s.cfg.PostTTL, s.cfg.ListMax)
	if published != nil {
		s.metrics.published.WithLabelValues("error").Inc()
	} else {
		s.metrics.publishedOK.Inc()
	}
	if err != nil {
		s.metrics.cacheOp("write", "error")
		s.log.Warn("cache write failed", "shard", sh.name, "post_id", p.ID, "err", err)
		// The list now lacks an acknowledged post: it must not be trusted as complete.
		s.cache.dropCoverage(sh, p.UserID, s.cfg.CoverageTTL)
		return
	}
	s.metrics.writeOK.Inc()
}

// linkPreview returns the preview of u from the URL cache, else from scrap within the bounded
// wait; nil (an empty preview) when neither has it in time.
func (s *Service) linkPreview(ctx context.Context, u string) json.RawMessage {
	sh := s.cache.view().shardFor(urlKey(u))
	if sh != nil {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
		b, err := sh.get(cctx, urlKey(u))
		cancel()
		switch {
		case err != nil:
			s.metrics.cacheOp("url", "error")
		case b != nil && isJSONObject(b):
			s.metrics.cacheOp("url", "hit")
			s.metrics.scrap.WithLabelValues("cached").Inc()
			return b
		default:
			s.metrics.cacheOp("url", "miss")
		}
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.ScrapTimeout)
	raw, err := s.preview.Scrap(sctx, u)
	timedOut := errors.Is(sctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		result := "error"
		if timedOut {
			result = "timeout"
		}
		s.metrics.scrap.WithLabelValues(result).Inc()
		s.log.Info("scrap failed", "url", u, "err", err)
		return nil
	}
	if !isJSONObject(raw) {
		s.metrics.scrap.WithLabelValues("error").Inc()
		return nil
	}
	s.metrics.scrap.WithLabelValues("ok").Inc()
	if sh != nil {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
		if err := sh.set(cctx, urlKey(u), raw, s.cfg.URLTTL); err != nil {
			s.metrics.cacheOp("url", "error")
		}
		cancel()
	}
	return raw
}

// isJSONObject reports whether b is one valid JSON value that is an object, without decoding it.
func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && json.Valid(b)
}

// Post returns one post of user uid: from the cache, else the database.
func (s *Service) Post(ctx context.Context, uid, id uint64) (post.Post, error) {
	sh := s.cache.view().shardFor(listKey(uid))
	if sh != nil {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
		b, err := sh.get(cctx, postKey(id))
		cancel()
		if p, ok := s.decodeCached(b, err, "post"); ok {
			if p.UserID != uid {
				return post.Post{}, httpapi.ErrNotFound.WithMessage("no such post")
			}
			return p, nil
		}
	}
	s.metrics.dbFallbacks.WithLabelValues("post").Inc()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	p, err := s.store.Get(dctx, id)
	cancel()
	if errors.Is(err, ErrNotFound) || (err == nil && p.UserID != uid) {
		return post.Post{}, httpapi.ErrNotFound.WithMessage("no such post")
	}
	if err != nil {
		s.log.Warn("db read failed", "post_id", id, "err", err)
		return post.Post{}, httpapi.ErrUnavailable
	}
	if sh != nil {
		if body, err := json.Marshal(p); err == nil {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
			_ = sh.set(cctx, postKey(id), body, s.cfg.PostTTL)
			cancel()
		}
	}
	return p, nil
}

// decodeCached turns a cache read into a post, counting hits, misses and errors under kind.
func (s *Service) decodeCached(b []byte, err error, kind string) (post.Post, bool) {
	if err != nil {
		s.metrics.cacheOp(kind, "error")
		return post.Post{}, false
	}
	var p post.Post
	if b == nil || json.Unmarshal(b, &p) != nil {
		s.metrics.cacheOp(kind, "miss")
		return post.Post{}, false
	}
	s.metrics.cacheOp(kind, "hit")
	return p, true
}
