package scrap

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/the-red/zkpost/internal/httpapi"
)

const ogPage = `<!doctype html><html><head><title>plain</title>
<meta property="og:title" content="OG title"><meta property="og:image" content="/img.png">
</head><body>hello</body></html>`

// fixture is a local HTTP server counting the requests it gets.
type fixture struct {
	*httptest.Server
	hits atomic.Int64
}

func newFixture(t testing.TB, h http.Handler) *fixture {
	t.Helper()
	f := &fixture{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func htmlHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, body)
	}
}

// mapResolver resolves the names it holds and fails every other one.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// testConfig lets 127.0.0.1 through (the fixtures) and turns robots.txt off unless a test wants it.
func testConfig() Config {
	c := DefaultConfig()
	c.AllowCIDR = "127.0.0.1/32"
	c.Robots = false
	c.Timeout = 3 * time.Second
	return c
}

func newTestService(t testing.TB, cfg Config, d Deps) *Service {
	t.Helper()
	if d.Resolver == nil {
		d.Resolver = mapResolver{}
	}
	s, err := NewService(cfg, d)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func scrapOK(t testing.TB, s *Service, rawURL string) *Preview {
	t.Helper()
	raw, err := s.Scrap(context.Background(), rawURL)
	if err != nil {
		t.Fatalf("Scrap(%s): got error %v, want a preview", rawURL, err)
	}
	var p Preview
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("preview JSON %s: %v", raw, err)
	}
	return &p
}

func wantAPIError(t testing.TB, err error, name string) *httpapi.Error {
	t.Helper()
	var api *httpapi.Error
	if !errors.As(err, &api) {
		t.Fatalf("got error %v, want API error %s", err, name)
	}
	if api.Name != name {
		t.Fatalf("got error %s (%s), want %s", api.Name, api.Message, name)
	}
	return api
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestFetchRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/page", htmlHandler(ogPage))
	// /hopN redirects N times before /page.
	mux.HandleFunc("/hop/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if n == 0 {
			htmlHandler(ogPage)(w, r)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusMovedPermanently)
	})
	mux.Handle("/loop", http.RedirectHandler("/loop", http.StatusFound))
	fx := newFixture(t, mux)
	s := newTestService(t, testConfig(), Deps{})

	p := scrapOK(t, s, fx.URL+"/hop/5")
	if got, want := str(p.Title), "OG title"; got != want {
		t.Errorf("title after 5 redirects: got %q, want %q", got, want)
	}
	if got, want := str(p.Image), fx.URL+"/img.png"; got != want {
		t.Errorf("image resolved against the final URL: got %q, want %q", got, want)
	}
	_, err := s.Scrap(context.Background(), fx.URL+"/hop/6")
	wantAPIError(t, err, "too_many_redirects")
	_, err = s.Scrap(context.Background(), fx.URL+"/loop")
	wantAPIError(t, err, "too_many_redirects")
}

// acceptCounter is a listener that counts and drops every connection: it must never see one.
type acceptCounter struct {
	ln       net.Listener
	accepted atomic.Int64
}

func listenCounting(t testing.TB, addr string) *acceptCounter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("cannot listen on %s: %v", addr, err)
	}
	a := countAccepts(ln)
	t.Cleanup(func() { ln.Close() })
	return a
}

func countAccepts(ln net.Listener) *acceptCounter {
	a := &acceptCounter{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.accepted.Add(1)
			c.Close()
		}
	}()
	return a
}

func (a *acceptCounter) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

func TestFetchRedirectInwardIsBlocked(t *testing.T) {
	inner := listenCounting(t, "127.0.0.2:0") // not in the allow list
	innerURL := fmt.Sprintf("http://127.0.0.2:%d/secret", inner.port())
	byName := fmt.Sprintf("http://inward.test:%d/secret", inner.port())
	mux := http.NewServeMux()
	mux.Handle("/to-ip", http.RedirectHandler(innerURL, http.StatusFound))
	mux.Handle("/to-name", http.RedirectHandler(byName, http.StatusFound))
	mux.Handle("/to-file", http.RedirectHandler("file:///etc/passwd", http.StatusFound))
	fx := newFixture(t, mux)
	cfg := testConfig()
	cfg.AllowPorts = "80,443," + strconv.Itoa(inner.port()) // so the address check, not the port, must refuse
	s := newTestService(t, cfg, Deps{Resolver: mapResolver{"inward.test": addrs("127.0.0.2")}})

	for _, path := range []string{"/to-ip", "/to-name", "/to-file"} {
		_, err := s.Scrap(context.Background(), fx.URL+path)
		wantAPIError(t, err, "blocked_address")
	}
	if n := inner.accepted.Load(); n != 0 {
		t.Fatalf("the inward server accepted %d connections, want 0", n)
	}
}

func TestFetchHugeBodyStopsAtCap(t *testing.T) {
	const limit = 64 << 20
	var written atomic.Int64
	writeFailed := make(chan struct{})
	chunk := bytes.Repeat([]byte("<p>filler filler filler</p>\n"), 1024)
	fx := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, ogPage[:strings.Index(ogPage, "<body>")]+"<body>")
		for written.Load() < limit {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				close(writeFailed)
				return
			}
		}
	}))
	cfg := testConfig()
	cfg.MaxBody = 256 << 10
	s := newTestService(t, cfg, Deps{})
	p := scrapOK(t, s, fx.URL+"/huge")
	if got, want := str(p.Title), "OG title"; got != want {
		t.Errorf("title from the first %d bytes: got %q, want %q", cfg.MaxBody, got, want)
	}
	select {
	case <-writeFailed:
	case <-time.After(10 * time.Second):
		t.Fatalf("the server kept writing (%d bytes) after the client stopped reading", written.Load())
	}
	// The socket buffers absorb some megabytes beyond what was read; never the whole body.
	if n := written.Load(); n >= limit {
		t.Fatalf("server wrote %d bytes, want the client to stop it well before %d", n, limit)
	}
}

func TestFetchHeadLargerThanCapIsTooLarge(t *testing.T) {
	fx := newFixture(t, htmlHandler("<html><head><title>x</title>"+strings.Repeat("<meta name=x content=y>", 10000)+"</head></html>"))
	cfg := testConfig()
	cfg.MaxBody = 64 << 10
	s := newTestService(t, cfg, Deps{})
	_, err := s.Scrap(context.Background(), fx.URL+"/")
	wantAPIError(t, err, "too_large")
}

func TestFetchSlowDripTimesOut(t *testing.T) {
	fx := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := w.Write([]byte("<")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
	cfg := testConfig()
	cfg.Timeout = 400 * time.Millisecond
	s := newTestService(t, cfg, Deps{})
	_, err := s.Scrap(context.Background(), fx.URL+"/drip")
	wantAPIError(t, err, "timeout")
}

func compress(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestFetchContentEncodings(t *testing.T) {
	gz := compress(t, "gzip", []byte(ogPage))
	corrupt := append([]byte{}, gz...)
	corrupt[len(corrupt)/2] ^= 0xff
	corrupt[len(corrupt)/2+1] ^= 0xff
	tests := []struct {
		name, encoding string
		body           []byte
		wantErr        string
	}{
		{"gzip", "gzip", gz, ""},
		{"deflate", "deflate", compress(t, "deflate", []byte(ogPage)), ""},
		{"brotli", "br", compress(t, "br", []byte(ogPage)), ""},
		{"corrupt gzip", "gzip", corrupt, "decode_error"},
		{"truncated gzip", "gzip", gz[:len(gz)-10], "decode_error"},
		{"not gzip at all", "gzip", []byte(ogPage), "decode_error"},
		{"unknown encoding", "zstd", []byte(ogPage), "decode_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotAE string
			fx := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotAE = r.Header.Get("Accept-Encoding")
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Encoding", tt.encoding)
				w.Write(tt.body)
			}))
			s := newTestService(t, testConfig(), Deps{})
			raw, err := s.Scrap(context.Background(), fx.URL+"/")
			if tt.wantErr != "" {
				wantAPIError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want a preview", err)
			}
			if !bytes.Contains(raw, []byte(`"title":"OG title"`)) {
				t.Errorf("got %s, want the decoded page's title", raw)
			}
			if gotAE != "gzip, deflate, br" {
				t.Errorf("Accept-Encoding: got %q, want %q", gotAE, "gzip, deflate, br")
			}
		})
	}
}

func TestFetchContentTypes(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		wantErr                 string
		wantImage               bool
	}{
		{"html", "text/html; charset=utf-8", ogPage, "", false},
		{"xhtml", "application/xhtml+xml", ogPage, "", false},
		{"sniffed html", "", ogPage, "", false},
		{"json", "application/json", `{"a":1}`, "not_html", false},
		{"pdf", "application/pdf", "%PDF-1.4", "not_html", false},
		{"plain text", "text/plain", ogPage, "not_html", false},
		{"sniffed binary", "", "\x00\x01\x02binary", "not_html", false},
		{"image", "image/png", "\x89PNG\r\n\x1a\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header()["Content-Type"] = []string{tt.contentType} // "" suppresses sniffing by net/http
				fmt.Fprint(w, tt.body)
			}))
			s := newTestService(t, testConfig(), Deps{})
			u := fx.URL + "/thing"
			raw, err := s.Scrap(context.Background(), u)
			if tt.wantErr != "" {
				wantAPIError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want a preview", err)
			}
			var p Preview
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			if tt.wantImage {
				if str(p.Image) != u || str(p.URL) != u || len(p.Images) != 1 || p.Images[0].URL != u {
					t.Errorf("image preview: got %s, want image, url and images[0] = %s", raw, u)
				}
				return
			}
			if got := str(p.Title); got != "OG title" {
				t.Errorf("title: got %q, want %q", got, "OG title")
			}
		})
	}
}

func TestFetchErrorStatusesIgnoreTheirOGTags(t *testing.T) {
	for _, code := range []int{404, 410, 500, 503} {
		fx := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			fmt.Fprint(w, ogPage)
		}))
		s := newTestService(t, testConfig(), Deps{})
		_, err := s.Scrap(context.Background(), fx.URL+"/")
		api := wantAPIError(t, err, "upstream_status")
		if !strings.Contains(api.Message, strconv.Itoa(code)) {
			t.Errorf("message %q: want it to name the upstream status %d", api.Message, code)
		}
	}
}

func TestFetchNetworkErrors(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(htmlHandler(ogPage)) // self-signed: nobody trusts it
	t.Cleanup(tlsSrv.Close)
	closed := httptest.NewServer(htmlHandler(ogPage))
	closedURL := closed.URL
	closed.Close()
	s := newTestService(t, testConfig(), Deps{Resolver: mapResolver{}})
	tests := []struct{ url, want string }{
		{tlsSrv.URL + "/", "tls_error"},
		{closedURL + "/", "connect_error"},
		{"http://no-such-host.test/", "dns_failure"},
	}
	for _, tt := range tests {
		_, err := s.Scrap(context.Background(), tt.url)
		wantAPIError(t, err, tt.want)
	}
}

func TestRobots(t *testing.T) {
	tests := []struct {
		name        string
		robots      http.HandlerFunc
		path        string
		wantErr     string
		wantFetched bool
	}{
		{"disallowed path", robotsTxt("User-agent: *\nDisallow: /private\n"), "/private/page", "robots_disallowed", false},
		{"other path allowed", robotsTxt("User-agent: *\nDisallow: /private\n"), "/public", "", true},
		{"own group beats star", robotsTxt("User-agent: *\nDisallow: /\n\nUser-agent: zkpost-scrap\nAllow: /\n"), "/x", "", true},
		{"own group disallows", robotsTxt("User-agent: *\nAllow: /\n\nUser-agent: ZKPost-Scrap\nDisallow: /x\n"), "/x", "robots_disallowed", false},
		{"404 allows all", statusOnly(404), "/x", "", true},
		{"403 allows all", statusOnly(403), "/x", "", true},
		{"500 disallows all", statusOnly(500), "/x", "robots_disallowed", false},
		{"503 disallows all", statusOnly(503), "/x", "robots_disallowed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pageHits atomic.Int64
			mux := http.NewServeMux()
			mux.Handle("/robots.txt", tt.robots)
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				pageHits.Add(1)
				htmlHandler(ogPage)(w, r)
			})
			fx := newFixture(t, mux)
			cfg := testConfig()
			cfg.Robots = true
			s := newTestService(t, cfg, Deps{})
			_, err := s.Scrap(context.Background(), fx.URL+tt.path)
			if tt.wantErr != "" {
				wantAPIError(t, err, tt.wantErr)
			} else if err != nil {
				t.Fatalf("got %v, want a preview", err)
			}
			if got := pageHits.Load() > 0; got != tt.wantFetched {
				t.Errorf("page fetched: got %v, want %v", got, tt.wantFetched)
			}
		})
	}
}

func TestRobotsCachedPerOrigin(t *testing.T) {
	var robotsHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		robotsHits.Add(1)
		robotsTxt("User-agent: *\nDisallow: /no\n")(w, r)
	})
	mux.Handle("/", htmlHandler(ogPage))
	fx := newFixture(t, mux)
	cfg := testConfig()
	cfg.Robots = true
	s := newTestService(t, cfg, Deps{})
	for i := range 5 {
		scrapOK(t, s, fmt.Sprintf("%s/page%d", fx.URL, i))
	}
	if got := robotsHits.Load(); got != 1 {
		t.Errorf("robots.txt fetched %d times for one origin, want 1", got)
	}
}

func robotsTxt(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, body)
	}
}

func statusOnly(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func TestCacheAndNegativeCache(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/ok", htmlHandler(ogPage))
	mux.Handle("/gone", statusOnly(410))
	fx := newFixture(t, mux)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := testConfig()
	cfg.CacheTTL, cfg.NegativeTTL = time.Minute, 5*time.Second
	s := newTestService(t, cfg, Deps{Now: clock})

	scrapOK(t, s, fx.URL+"/ok")
	scrapOK(t, s, fx.URL+"/ok#fragment") // same normalized key
	if got := fx.hits.Load(); got != 1 {
		t.Fatalf("server hits after two scraps of one URL: got %d, want 1", got)
	}
	for range 2 {
		_, err := s.Scrap(context.Background(), fx.URL+"/gone")
		wantAPIError(t, err, "upstream_status")
	}
	if got := fx.hits.Load(); got != 2 {
		t.Fatalf("server hits after two scraps of a failing URL: got %d, want 2 (negative cache)", got)
	}
	advance(6 * time.Second)
	s.Scrap(context.Background(), fx.URL+"/gone")
	scrapOK(t, s, fx.URL+"/ok")
	if got := fx.hits.Load(); got != 3 {
		t.Fatalf("server hits after the negative TTL: got %d, want 3 (failure refetched, success still cached)", got)
	}
	advance(time.Minute)
	scrapOK(t, s, fx.URL+"/ok")
	if got := fx.hits.Load(); got != 4 {
		t.Fatalf("server hits after the cache TTL: got %d, want 4", got)
	}
}

func TestConcurrentScrapsCollapse(t *testing.T) {
	const callers = 20
	release := make(chan struct{})
	arrived := make(chan struct{}, callers)
	fx := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		htmlHandler(ogPage)(w, r)
	}))
	s := newTestService(t, testConfig(), Deps{})
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, err := s.Scrap(context.Background(), fx.URL+"/same")
			errs <- err
		})
	}
	<-arrived // the fetch is in flight; every caller either joins it or finds its result cached
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("caller got %v, want a preview", err)
		}
	}
	if got := fx.hits.Load(); got != 1 {
		t.Fatalf("server saw %d requests for %d concurrent scraps of one URL, want 1", got, callers)
	}
}

func TestEnvironmentProxyIsIgnored(t *testing.T) {
	proxy := listenCounting(t, "127.0.0.1:0")
	proxyURL := "http://" + proxy.ln.Addr().String()
	for _, v := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"} {
		t.Setenv(v, proxyURL)
	}
	t.Setenv("NO_PROXY", "")
	fx := newFixture(t, htmlHandler(ogPage))
	s := newTestService(t, testConfig(), Deps{})
	scrapOK(t, s, fx.URL+"/")
	if n := proxy.accepted.Load(); n != 0 {
		t.Fatalf("the environment proxy got %d connections, want 0", n)
	}
}
