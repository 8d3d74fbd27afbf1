package postsvc_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/headless"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/internal/testenv/stacktest"
	"github.com/the-red/zkpost/post"
)

// streamDelivery bounds how long a post takes from its acknowledgement to a subscriber on another
// postsvcd in these tests; the target is ~100 ms, and a loaded test machine gets slack.
const streamDelivery = 5 * time.Second

func stream(t *testing.T, s *stacktest.Stack, i int, uid uint64, lastEventID string) *itest.SSE {
	t.Helper()
	hdr := http.Header{}
	if lastEventID != "" {
		hdr.Set("Last-Event-ID", lastEventID)
	}
	st := itest.OpenSSE(t, fmt.Sprintf("%s/api/v1/posts/%d/stream", s.Base(i), uid), hdr)
	if st.Status != 200 {
		t.Fatalf("stream of user %d on postsvcd %d: got %d %s, want 200", uid, i, st.Status, st.Body)
	}
	return st
}

// writeAcked writes through postsvcd i until it is acknowledged: a 503 (no id while a loaded
// machine stalls ZooKeeper and guidd suspends its lease, or the queue is slow) saved nothing, and
// the stream is only concerned with acknowledged posts.
func writeAcked(t *testing.T, s *stacktest.Stack, i int, uid uint64, contents string) post.Post {
	t.Helper()
	return writeLinkAcked(t, s, i, uid, contents, "")
}

func writeLinkAcked(t *testing.T, s *stacktest.Stack, i int, uid uint64, contents, link string) post.Post {
	t.Helper()
	var p post.Post
	var code int
	var err error
	ok := itest.Eventually(30*time.Second, func() bool {
		p, code, err = s.Write(i, uid, contents, link)
		return err == nil && code == 201
	})
	if !ok {
		t.Fatalf("write via postsvcd %d: %d %v", i, code, err)
	}
	return p
}

// expect reads events from st until every id in want arrived; events of other ids may come
// between (a resumed stream repeats the ids of its replay window).
func expect(t *testing.T, st *itest.SSE, label string, want ...uint64) []string {
	t.Helper()
	evs, err := st.Collect(streamDelivery*2, func(ids []string) bool {
		for _, w := range want {
			if !slices.Contains(ids, strconv.FormatUint(w, 10)) {
				return false
			}
		}
		return true
	})
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	if err != nil {
		t.Fatalf("%s: waiting for %v: %v (got %v)", label, want, err, ids)
	}
	return ids
}

// TestStreamAcrossInstances runs two real postsvcd over real shards: a post written through one
// reaches subscribers on both; a stream resumed with Last-Event-ID on the other gets what it
// missed; and when the author's shard is killed and marked DOWN (as redismon does), open streams
// follow the author to the new shard by themselves.
func TestStreamAcrossInstances(t *testing.T) {
	itest.SkipShort(t, "full stack: skipped with -short")
	s := newStack(t)
	const uid = 4242
	a, b := stream(t, s, 0, uid, ""), stream(t, s, 1, uid, "")

	p := writeAcked(t, s, 0, uid, "to both")
	expect(t, a, "same postsvcd", p.ID)
	expect(t, b, "other postsvcd", p.ID)

	b.Close()
	missed := []uint64{writeAcked(t, s, 0, uid, "missed 1").ID, writeAcked(t, s, 1, uid, "missed 2").ID}
	expect(t, a, "stream kept open", missed...)
	b = stream(t, s, 1, uid, strconv.FormatUint(p.ID, 10))
	expect(t, b, "resumed on the other postsvcd", missed...)

	demoFollowsStream(t, s)

	names := []string{"redis1", "redis2", "redis3"}
	owner, _ := discovery.NewRing(names).Locate("pl:" + strconv.Itoa(uid))
	dead := slices.Index(names, owner)
	s.Shards[dead].Kill()
	s.SetNode(t, s.CacheNode(dead), []byte(`{"status":"DOWN","epoch":1}`))
	s.WaitRing(t, 2)
	after := []uint64{writeAcked(t, s, 1, uid, "after failover 1").ID, writeAcked(t, s, 0, uid, "after failover 2").ID}
	expect(t, a, "postsvcd 0 after the shard failover", after...)
	expect(t, b, "postsvcd 1 after the shard failover", after...)
}

// demoFollowsStream opens the demo page of a user on postsvcd 0 in headless Chromium, types into
// the form, writes a post through the API of postsvcd 1, and sees it on the page without a
// reload: the typed text and a marker set on the page's window are still there.
func demoFollowsStream(t *testing.T, s *stacktest.Stack) {
	b := headless.Start(t)
	const uid = 4343
	writeAcked(t, s, 1, uid, "already there")
	b.Navigate(s.Base(0) + "/demo?user_id=" + strconv.Itoa(uid))
	if err := b.Eval(`window.notReloaded = true; document.querySelector("textarea").value = "half-typed"; true`, nil); err != nil {
		t.Fatal(err)
	}
	// Let the page's EventSource connect before writing, so the post arrives live, not replayed.
	b.WaitTrue(10*time.Second, "the page's stream open", `document.getElementById("posts").dataset.stream === "open"`)
	p := writeLinkAcked(t, s, 1, uid, "written through the other postsvcd", "https://example.com/ä€?q=1")
	b.WaitTrue(10*time.Second, "the new post on the page", `!!document.getElementById("post-`+strconv.FormatUint(p.ID, 10)+`")`)
	var state struct {
		Reloaded bool   `json:"reloaded"`
		Typed    string `json:"typed"`
		First    string `json:"first"`
		Href     string `json:"href"`
		Text     string `json:"text"`
	}
	err := b.Eval(`(() => { const a = document.querySelector("#posts article"), l = a.querySelector("a.link");
		return {reloaded: !window.notReloaded, typed: document.querySelector("textarea").value, first: a.id,
			href: l.getAttribute("href"), text: l.textContent}; })()`, &state)
	if err != nil {
		t.Fatal(err)
	}
	if state.Reloaded || state.Typed != "half-typed" || state.First != "post-"+strconv.FormatUint(p.ID, 10) {
		b.Fail(fmt.Sprintf("after a live post: got %+v, want no reload, the typed text kept, the new post first", state))
	}
	if state.Href != state.Text || state.Text != "https://example.com/%C3%A4%E2%82%AC?q=1" {
		b.Fail(fmt.Sprintf("live post link: shows %q, links %q; want both https://example.com/%%C3%%A4%%E2%%82%%AC?q=1", state.Text, state.Href))
	}
}
