package postsvc

import (
	"testing"
	"time"
)

// TestMarkerRefreshedAheadOfExpiry reads a user's first page continuously for more than twice
// --coverage-ttl. Every read must be served from the cache with the right posts: the marker is
// renewed in the background in the last quarter of its life, so no read ever finds it expired and
// merges with the database in the request. And it is renewed about once per life, not on every
// read of its last quarter.
func TestMarkerRefreshedAheadOfExpiry(t *testing.T) {
	const ttl = 3 * time.Second
	h := newHarness(t, 1, func(c *Config) { c.CoverageTTL = ttl })
	h.advance(h.srv.svc.cfg.Settle + time.Second) // past the settle window: merges may claim coverage
	const uid = 9
	for range 3 {
		h.write(uid, "post", "")
	}
	h.db.persist()
	want := h.db.truth(uid)
	h.page(uid, 0, 10) // the merge that writes the first marker
	before := h.metric(`postsvc_db_fallbacks_total{reason="not_covered"}`)
	// A reader's pace: a page every 50 ms, for 2⅓ marker lives.
	pace := time.NewTicker(50 * time.Millisecond)
	defer pace.Stop()
	for end := time.Now().Add(2*ttl + ttl/3); time.Now().Before(end); <-pace.C {
		if got := postIDs(h.page(uid, 0, 10).Posts); !equalIDs(got, want) {
			t.Fatalf("page %v, want %v", got, want)
		}
	}
	if n := h.metric(`postsvc_db_fallbacks_total{reason="not_covered"}`) - before; n != 0 {
		t.Errorf("%v reads merged with the database in the request: the marker expired", n)
	}
	// A renewed marker is not renewed again for three quarters of its life: over 2⅓ lives, at
	// most 4 refreshes (a read every 50 ms in every last quarter would make ~15 per quarter).
	if n := h.metric(`postsvc_coverage_refreshes_total{result="done"}`); n < 2 || n > 4 {
		t.Errorf("%v background refreshes over %v of reads, want 2 to 4", n, 2*ttl+ttl/3)
	}
}
