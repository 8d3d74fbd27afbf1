package postsvc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

func TestBadInputEveryEndpoint(t *testing.T) {
	h := newHarness(t, 2, nil)
	long := strings.Repeat("x", DefaultConfig().MaxContents+1)
	tests := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/api/v1/posts", `{"user_id":-1,"contents":"x"}`, 400},
		{"POST", "/api/v1/posts", `{"user_id":1,"contents":"` + long + `"}`, 400},
		{"POST", "/api/v1/posts", `{"user_id":1,"contents":"x","url":"javascript:alert(1)"}`, 400},
		{"POST", "/api/v1/posts", `{"user_id":1,"contents":"x","extra":1}`, 400},
		{"GET", "/api/v1/posts", "", 405},
		{"GET", "/api/v1/write_post/0?contents=x", "", 400},
		{"GET", "/api/v1/write_post/abc?contents=x", "", 400},
		{"GET", "/api/v1/write_post/1?contents=%20", "", 400},
		{"GET", "/api/v1/write_post/1?contents=%FF", "", 400},
		{"GET", "/api/v1/write_post/1?contents=x&url=" + url.QueryEscape("data:text/html,<script>"), "", 400},
		{"GET", "/api/v1/write_post/18446744073709551616?contents=x", "", 400},
		{"POST", "/api/v1/write_post/1?contents=x", "", 405},
		{"GET", "/api/v1/posts/-1", "", 400},
		{"GET", "/api/v1/posts/1?limit=0", "", 400},
		{"GET", "/api/v1/posts/1?limit=101", "", 400},
		{"GET", "/api/v1/posts/1?f=abc", "", 400},
		{"GET", "/api/v1/posts/1/0", "", 400},
		{"GET", "/api/v1/posts/1/99", "", 404},
		{"GET", "/api/v1/posts/1/2/3", "", 404},
		{"GET", "/nope", "", 404},
	}
	for _, tc := range tests {
		r := h.do(tc.method, tc.path, tc.body)
		var env struct {
			Code  int    `json:"code"`
			Error string `json:"error"`
		}
		if r.status != tc.status || json.Unmarshal(r.body, &env) != nil || env.Code >= 0 || env.Error == "" {
			t.Errorf("%s %.60s: got %d %.200s, want %d in the envelope", tc.method, tc.path, r.status, r.body, tc.status)
		}
	}
	// An oversized body is refused from its Content-Length, before it is read (a raw connection:
	// an HTTP client still sending the body would see the reset instead of the answer).
	conn, err := net.Dial("tcp", h.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("oversized body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"error":"too_large"`) {
		t.Errorf("oversized body: got %d %s, want 413 too_large", resp.StatusCode, b)
	}
	h.db.persist()
	if n := len(h.db.rows); n != 0 {
		t.Errorf("bad input wrote %d rows", n)
	}
	for _, r := range h.shards {
		if n, _ := r.Client(t).DBSize(context.Background()).Result(); n != 0 {
			t.Errorf("bad input left %d keys in shard %s", n, r.Addr())
		}
	}
}

func TestWritePostGETForm(t *testing.T) {
	h := newHarness(t, 1, nil)
	long := strings.Repeat("é", DefaultConfig().MaxContents/2) // the longest contents, percent-encoded in the URL
	if r := h.do("GET", "/api/v1/write_post/5?contents="+url.QueryEscape(long), ""); r.status != 200 {
		t.Fatalf("longest contents in the query: got %d %.200s, want 200", r.status, r.body)
	}
	r := h.do("GET", "/api/v1/write_post/5?contents="+url.QueryEscape("a+b & c")+"&url="+url.QueryEscape("https://example.com/?a=1&b=2"), "")
	if r.status != 200 {
		t.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	var p struct {
		Contents, URL string
	}
	json.Unmarshal(r.body, &p)
	if p.Contents != "a+b & c" || p.URL != "https://example.com/?a=1&b=2" {
		t.Fatalf("got %+v", p)
	}
}

func TestDemoEscapesHostileContent(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.scrap.fn = func(ctx context.Context, u string) (json.RawMessage, error) {
		return json.RawMessage(`{"title":"<script>alert('t')</script>","description":"<img src=x onerror=alert(1)>",
			"image":"javascript:alert(2)","site_name":"\"><b>site</b>","url":"javascript:alert(3)"}`), nil
	}
	h.write(3, `<script>alert("c")</script></div><a href="javascript:alert(4)">x</a>`, "https://example.com/p")
	h.scrap.fn = func(ctx context.Context, u string) (json.RawMessage, error) {
		return json.RawMessage(`{"title":"fine","image":"https://img.example.com/a.png?x=\"onload=alert(5)"}`), nil
	}
	h.write(3, "second", "https://example.com/q")
	r := h.do("GET", "/demo?user_id=3", "")
	if r.status != 200 {
		t.Fatalf("demo status: got %d, want 200", r.status)
	}
	page := string(r.body)
	for _, bad := range []string{"<script>alert", `href="javascript`, `src="javascript`, "<img src=x", `"onload=`, "<b>site", "<a href="} {
		if strings.Contains(page, bad) {
			t.Errorf("demo page contains %q:\n%s", bad, page)
		}
	}
	for _, good := range []string{"&lt;script&gt;", "https://example.com/p", "fine", "https://img.example.com/a.png"} {
		if !strings.Contains(page, good) {
			t.Errorf("demo page lacks %q", good)
		}
	}
	if r := h.do("GET", "/demo?user_id=-1", ""); r.status != 400 {
		t.Errorf("demo with a bad user id: got %d, want 400", r.status)
	}
	resp, err := h.hc.PostForm(h.base+"/demo", url.Values{"user_id": {"3"}, "contents": {"from the form"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.RequestURI() != "/demo?user_id=3" {
		t.Fatalf("demo form: got %d at %s, want 200 at /demo?user_id=3 after the redirect", resp.StatusCode, resp.Request.URL)
	}
	if p := h.page(3, 0, 1); len(p.Posts) == 0 || p.Posts[0].Contents != "from the form" {
		t.Fatalf("first post after the demo form: got %+v, want contents \"from the form\"", p.Posts)
	}
}

// TestShutdownDrainsInFlightWrites holds a write inside its enqueue while Shutdown starts: the write
// must complete (enqueued and cached, 201) rather than be cancelled by the shutdown.
func TestShutdownDrainsInFlightWrites(t *testing.T) {
	h := newHarness(t, 1, nil)
	gate := make(chan struct{})
	h.db.gate.Store(&gate)
	res := make(chan apiResp, 1)
	go func() { res <- h.do("POST", "/api/v1/posts", `{"user_id":8,"contents":"in flight"}`) }()
	<-h.db.entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- h.srv.Shutdown(ctx)
	}()
	itest.WaitFor(t, 5*time.Second, "the listener closed", func() bool {
		c, err := net.DialTimeout("tcp", h.srv.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(gate)
	if r := <-res; r.status != 201 {
		t.Fatalf("in-flight write during shutdown: got %d %s, want 201", r.status, r.body)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if len(h.db.pending) != 1 {
		t.Fatalf("got %d enqueued posts, want 1", len(h.db.pending))
	}
}

// FuzzMatch feeds arbitrary paths to the router: a match names a served route, allows at least
// one method, and hands on only non-empty id segments that the path really holds.
func FuzzMatch(f *testing.F) {
	for _, p := range []string{"/api/v1/posts", "/api/v1/posts/42", "/api/v1/posts/42/7", "/api/v1/posts//7",
		"/api/v1/write_post/9", "/api/v1/write_post/9/x", "/demo", "/healthz", "/metrics", "/", "", "/api/v1/posts/%2F"} {
		f.Add(p)
	}
	routes := (&Server{}).buildRoutes(metrics.NewHTTP(prometheus.NewRegistry()), nil)
	f.Fuzz(func(t *testing.T, path string) {
		name, params, methods := match(path)
		if name == "" {
			if params != nil || methods != "" {
				t.Fatalf("match(%q): got no route with params %q, methods %q; want neither", path, params, methods)
			}
			return
		}
		if _, ok := routes[name]; !ok || methods == "" {
			t.Fatalf("match(%q): got route %q with methods %q, want a served route and some method", path, name, methods)
		}
		for _, p := range params {
			if p == "" || strings.Contains(p, "/") || !strings.Contains(path, "/"+p) {
				t.Fatalf("match(%q): got param %q, want a non-empty segment of the path", path, p)
			}
		}
	})
}
