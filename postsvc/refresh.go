package postsvc

import (
	"context"
	"sync"
	"time"
)

// Refresh ahead. A list's coverage marker lives --coverage-ttl; once it is gone, the next read of
// the list's first page merges with the database in the request (several ms instead of a fraction
// of one). With many users, some marker always expires, so that cost lands in every read path's
// tail. So a first-page read that finds its marker in the last quarter of its life is still
// served from the cache, and starts, in the background, the same merge a read would make once
// the marker is gone: it renews the marker (coverage.go's fill) before it expires. At most one
// refresh per user runs at a time; a refresh is a read like any other, so what it may claim is
// what a foreground read at that moment may claim (docs/failure-semantics.md §4).
//
// Only a read of the list itself sees the marker's age. A page kept in process therefore ends
// in the first half of the marker's last quarter, at a random point (timeline.go's keptFor): the
// next request reads the list and starts the refresh unless another instance has made one
// already; its page is kept briefly at most (its marker is old), and once the renewed marker is
// read, for most of the new marker's life again.
// So a marker is renewed about once per life, whichever instances read it, and no page is kept
// past the marker that proved it.
type refresher struct {
	mu      sync.Mutex
	running map[uint64]struct{}
	wg      sync.WaitGroup
	closed  bool
}

// refreshAhead is how much of a marker's life must remain for a read not to refresh it.
func (s *Service) refreshAhead() time.Duration { return s.cfg.CoverageTTL / 4 }

// maybeRefresh starts a background refresh of q's first page when left, the remaining life of the
// marker that proved it under view, is short. Not within --coverage-settle of view's install: a
// merge then claims nothing, so the refresh would renew nothing and the next read would start
// another.
func (s *Service) maybeRefresh(q listQuery, view *ringView, left time.Duration) {
	if q.MaxID != 0 || left <= 0 || left >= s.refreshAhead() || s.now().Sub(view.since) < s.cfg.Settle {
		return
	}
	r := &s.refreshes
	r.mu.Lock()
	if _, busy := r.running[q.UserID]; busy || r.closed {
		r.mu.Unlock()
		return
	}
	if r.running == nil {
		r.running = map[uint64]struct{}{}
	}
	r.running[q.UserID] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer func() {
			r.mu.Lock()
			delete(r.running, q.UserID)
			r.mu.Unlock()
			r.wg.Done()
		}()
		s.refresh(q)
	}()
}

// refresh merges q's first page with the database as a read whose marker is gone would, and so
// writes the marker anew.
func (s *Service) refresh(q listQuery) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreTimeout+2*s.cfg.CacheTimeout)
	defer cancel()
	view := s.cache.view()
	sh := view.shardFor(listKey(q.UserID))
	if sh == nil {
		return
	}
	cctx, ccancel := context.WithTimeout(ctx, s.cfg.CacheTimeout)
	r, err := s.cov.read(cctx, sh, q.UserID, 0, q.Limit+1)
	ccancel()
	if err != nil {
		s.metrics.refreshes.WithLabelValues("error").Inc()
		return
	}
	if _, err := s.mergedPage(ctx, listQuery{UserID: q.UserID, Limit: q.Limit}, sh, view, r); err != nil {
		s.metrics.refreshes.WithLabelValues("error").Inc()
		return
	}
	s.metrics.refreshes.WithLabelValues("done").Inc()
}

// closeRefreshes lets no new refresh start and waits for the running ones.
func (s *Service) closeRefreshes() {
	s.refreshes.mu.Lock()
	s.refreshes.closed = true
	s.refreshes.mu.Unlock()
	s.refreshes.wg.Wait()
}
