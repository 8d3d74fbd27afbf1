package scrap

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/metrics"
)

// startServer runs a Server on 127.0.0.1:0 until the test ends and returns its base URL.
func startServer(t testing.TB, scrap scrapFunc) string {
	t.Helper()
	srv, err := newServer(ServerConfig{Listen: "127.0.0.1:0", Wait: 5 * time.Second}, scrap, slog.New(slog.DiscardHandler), metrics.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + srv.Addr().String()
}

type envelope struct {
	Code    int             `json:"code"`
	Name    string          `json:"error"`
	Message string          `json:"message"`
	Scrap   json.RawMessage `json:"scrap"`
}

func get(t testing.TB, target string) (int, envelope) {
	t.Helper()
	resp, err := http.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", target, body, err)
	}
	return resp.StatusCode, env
}

func TestServerEndToEnd(t *testing.T) {
	fx := newFixture(t, htmlHandler(ogPage))
	s := newTestService(t, testConfig(), Deps{})
	base := startServer(t, s.Scrap)

	status, env := get(t, base+"/api/v1/scrap?url="+url.QueryEscape(fx.URL+"/page?a=1&b=2"))
	if status != 200 || env.Code != 0 {
		t.Fatalf("got %d %+v, want 200 with code 0", status, env)
	}
	var p Preview
	if err := json.Unmarshal(env.Scrap, &p); err != nil || str(p.Title) != "OG title" {
		t.Fatalf("scrap %s: want the fixture's preview (err %v)", env.Scrap, err)
	}

	tests := []struct {
		query  string
		status int
		name   string
	}{
		{"", 400, "invalid_url"},
		{"?url=", 400, "invalid_url"},
		{"?url", 400, "invalid_url"},
		{"?url=&url=" + url.QueryEscape(fx.URL+"/page"), 400, "invalid_url"},
		{"?url=" + url.QueryEscape(fx.URL+"/page") + "&url=" + url.QueryEscape(fx.URL+"/page"), 400, "invalid_url"},
		{"?url=" + url.QueryEscape("ftp://example.com/"), 400, "invalid_url"},
		{"?url=" + url.QueryEscape("http://user@example.com/"), 400, "invalid_url"},
		{"?url=%zz", 400, "invalid_url"},
		{"?url=" + url.QueryEscape("http://10.0.0.1/"), 403, "blocked_address"},
		{"?url=" + url.QueryEscape("http://no-such-host.test/"), 502, "dns_failure"},
	}
	for _, tt := range tests {
		status, env := get(t, base+"/api/v1/scrap"+tt.query)
		if status != tt.status || env.Name != tt.name || env.Code >= 0 || env.Message == "" {
			t.Errorf("query %q: got %d %+v, want %d %s with a negative code and a message", tt.query, status, env, tt.status, tt.name)
		}
	}
	if status, env := get(t, base+"/nope"); status != 404 || env.Name != "not_found" {
		t.Errorf("unknown path: got %d %+v, want 404 not_found", status, env)
	}
}

func TestServerErrorStatuses(t *testing.T) {
	want := map[*httpapi.Error]int{
		ErrInvalidURL: 400, ErrBlockedAddress: 403, ErrRobotsDisallowed: 403, ErrDNSFailure: 502,
		ErrConnect: 502, ErrTLS: 502, ErrTimeout: 504, ErrTooManyRedirects: 502, ErrUpstreamStatus: 502,
		ErrNotHTML: 415, ErrTooLarge: 502, ErrDecode: 502,
	}
	type errBox struct{ err error }
	var next atomic.Pointer[errBox]
	base := startServer(t, func(context.Context, string) (json.RawMessage, error) { return nil, next.Load().err })
	names := map[string]bool{}
	for e, status := range want {
		next.Store(&errBox{e})
		got, env := get(t, base+"/api/v1/scrap?url=x")
		if got != status || env.Name != e.Name || env.Code != e.Code {
			t.Errorf("%s: got %d %+v, want %d with code %d", e.Name, got, env, status, e.Code)
		}
		if names[e.Name] {
			t.Errorf("error name %s used twice", e.Name)
		}
		names[e.Name] = true
	}
	next.Store(&errBox{errors.New("dial tcp 10.1.2.3:80: secret internal detail")})
	got, env := get(t, base+"/api/v1/scrap?url=x")
	if got != 502 || env.Name != "connect_error" || env.Message != ErrConnect.Message {
		t.Errorf("a raw Go error: got %d %+v, want 502 connect_error with the fixed message", got, env)
	}
}

// TestServerMethods: every route answers a method other than GET or HEAD with 405, the envelope,
// and the Allow header RFC 9110 §15.5.6 requires.
func TestServerMethods(t *testing.T) {
	base := startServer(t, func(context.Context, string) (json.RawMessage, error) { return json.RawMessage(`{}`), nil })
	for _, path := range []string{"/api/v1/scrap?url=x", "/healthz", "/readyz", "/metrics", "/nope"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"} {
			req, _ := http.NewRequest(method, base+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var env envelope
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || json.Unmarshal(body, &env) != nil || env.Name != "method_not_allowed" {
				t.Errorf("%s %s: got %d Allow=%q %s; want 405, Allow: GET, HEAD and the envelope", method, path, resp.StatusCode, resp.Header.Get("Allow"), body)
			}
		}
	}
}

func TestServerHealthAndMetrics(t *testing.T) {
	base := startServer(t, func(context.Context, string) (json.RawMessage, error) { return json.RawMessage(`{}`), nil })
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: got %d, want 200", path, resp.StatusCode)
		}
	}
}

// offlineService is a Service that can never open a connection: every name fails to resolve and
// no port is allowed, so every literal address is refused before dialing.
func offlineService(t testing.TB) *Service {
	cfg := DefaultConfig()
	cfg.AllowPorts = ""
	cfg.Robots = true
	return newTestService(t, cfg, Deps{Resolver: mapResolver{}})
}

func FuzzScrapQuery(f *testing.F) {
	for _, s := range []string{
		"url=http%3A%2F%2Fexample.com%2F", "url=http://example.com/?a=1&b=2", "url=", "", "url=%", "url=%zz",
		"url=http%3A%2F%2F127.0.0.1%2F", "url=http://[::1]/&url=x", "url=gopher://x", "a=b&url=https://x.y:0/",
		"url=http://0x7f.1/", "url=" + url.QueryEscape("http://例え.jp/"), "url=http://%00/",
	} {
		f.Add(s)
	}
	s := offlineService(f)
	srv, err := newServer(ServerConfig{Listen: "127.0.0.1:0", Wait: 2 * time.Second}, s.Scrap, slog.New(slog.DiscardHandler), metrics.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.ln.Close() })
	h := srv.srv.Handler
	f.Fuzz(func(t *testing.T, query string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/api/v1/scrap?" + query)
		h(&ctx)
		status := ctx.Response.StatusCode()
		if status >= 500 && status != 502 && status != 504 {
			t.Fatalf("query %q: got status %d, want 4xx or an upstream-class 502/504", query, status)
		}
		var env envelope
		if err := json.Unmarshal(ctx.Response.Body(), &env); err != nil {
			t.Fatalf("query %q: body %q is not JSON", query, ctx.Response.Body())
		}
		if status != 200 && (env.Code >= 0 || env.Name == "") {
			t.Fatalf("query %q: got %d %+v, want the error envelope", query, status, env)
		}
	})
}
