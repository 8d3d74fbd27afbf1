package guid_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/internal/metrics"
)

// newOfflineServer returns a server whose ZooKeeper is unreachable: it never holds a lease, which
// is all the input-validation paths need.
func newOfflineServer(tb testing.TB) *guid.Server {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := discovery.Dial(discovery.Config{Servers: "127.0.0.1:1", Root: "/t", SessionTimeout: 2 * time.Second}, log)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(conn.Close)
	s, err := guid.New(guid.Config{Listen: "127.0.0.1:0"}, guid.Deps{
		Conn: conn, Layout: discovery.Layout{Root: "/t"}, Registry: metrics.NewRegistry(), Log: log,
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

func serve(h fasthttp.RequestHandler, method, uri string) *fasthttp.Response {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	h(&ctx)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	return resp
}

type envelope struct {
	Code    int    `json:"code"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

func TestHandlerErrors(t *testing.T) {
	h := newOfflineServer(t).Handler()
	tests := []struct {
		name, method, uri string
		wantStatus        int
		wantError         string
	}{
		{"count zero", "GET", "/api/v1/guid?count=0", 400, "invalid_argument"},
		{"count too big", "GET", "/api/v1/guid?count=5000", 400, "invalid_argument"},
		{"count 4097", "GET", "/api/v1/guid?count=4097", 400, "invalid_argument"},
		{"count not a number", "GET", "/api/v1/guid?count=abc", 400, "invalid_argument"},
		{"count empty", "GET", "/api/v1/guid?count=", 400, "invalid_argument"},
		{"count bare", "GET", "/api/v1/guid?count", 400, "invalid_argument"},
		{"count repeated", "GET", "/api/v1/guid?count=2&count=2", 400, "invalid_argument"},
		{"count empty then valid", "GET", "/api/v1/guid?count=&count=3", 400, "invalid_argument"},
		{"count signed", "GET", "/api/v1/guid?count=+5", 400, "invalid_argument"},
		{"count negative", "GET", "/api/v1/guid?count=-1", 400, "invalid_argument"},
		{"decode non-numeric", "GET", "/api/v1/guid/abc/decode", 400, "invalid_argument"},
		{"decode negative", "GET", "/api/v1/guid/-5/decode", 400, "invalid_argument"},
		{"decode sign bit set", "GET", "/api/v1/guid/9223372036854775808/decode", 400, "invalid_argument"},
		{"decode too long", "GET", "/api/v1/guid/123456789012345678901234/decode", 400, "invalid_argument"},
		{"decode with slash", "GET", "/api/v1/guid/1/2/decode", 400, "invalid_argument"},
		{"unknown path", "GET", "/api/v1/nope", 404, "not_found"},
		{"decode without id", "GET", "/api/v1/guid//decode", 404, "not_found"},
		{"wrong method", "POST", "/api/v1/guid", 405, "method_not_allowed"},
		{"wrong method, unknown path", "DELETE", "/nope", 405, "method_not_allowed"},
		{"wrong method, health", "PUT", "/healthz", 405, "method_not_allowed"},
		{"no lease single", "GET", "/api/v1/guid", 503, "no_lease"},
		{"no lease batch", "GET", "/api/v1/guid?count=10", 503, "no_lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := serve(h, tt.method, tt.uri)
			if got := resp.StatusCode(); got != tt.wantStatus {
				t.Fatalf("%s %s: status %d, want %d (body %s)", tt.method, tt.uri, got, tt.wantStatus, resp.Body())
			}
			if allow := string(resp.Header.Peek("Allow")); (tt.wantStatus == 405) != (allow != "") ||
				(allow != "" && allow != "GET, HEAD") {
				t.Fatalf("Allow %q on a %d; RFC 9110 wants \"GET, HEAD\" on every 405 and only there", allow, tt.wantStatus)
			}
			var e envelope
			if err := json.Unmarshal(resp.Body(), &e); err != nil {
				t.Fatalf("body %q: %v", resp.Body(), err)
			}
			if e.Error != tt.wantError || e.Code >= 0 || e.Message == "" {
				t.Fatalf("envelope %+v, want error %q, a negative code and a message", e, tt.wantError)
			}
		})
	}
}

func TestHandlerDecode(t *testing.T) {
	h := newOfflineServer(t).Handler()
	id := guid.Compose(time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC).UnixMilli()-guid.EpochMs, 7, 19, 4095)
	resp := serve(h, "GET", "/api/v1/guid/"+itoa(id)+"/decode")
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d, body %s", resp.StatusCode(), resp.Body())
	}
	var got map[string]any
	if err := json.Unmarshal(resp.Body(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"guid_str": itoa(id), "timestamp_ms": float64(time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC).UnixMilli()),
		"time": "2026-01-02T03:04:05.678Z", "datacenter": float64(7), "worker": float64(19), "sequence": float64(4095),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields %v, want exactly %v", got, want)
	}
}

func TestHandlerHealthAndReadiness(t *testing.T) {
	h := newOfflineServer(t).Handler()
	if resp := serve(h, "GET", "/healthz"); resp.StatusCode() != 200 || string(resp.Body()) != `{"status":"ok"}` {
		t.Fatalf("/healthz: %d %s", resp.StatusCode(), resp.Body())
	}
	resp := serve(h, "GET", "/readyz")
	var r guid.Readiness
	if err := json.Unmarshal(resp.Body(), &r); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 503 || r.Status != "unready" || !strings.Contains(strings.Join(r.Reasons, ","), "no_zk_session") {
		t.Fatalf("/readyz without ZooKeeper: %d %+v, want 503 unready with no_zk_session", resp.StatusCode(), r)
	}
	if resp := serve(h, "GET", "/metrics"); resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), "guid_lease_held 0") {
		t.Fatalf("/metrics: %d, want 200 with guid_lease_held 0", resp.StatusCode())
	}
}

func itoa(id uint64) string { return strings.TrimSpace(jsonString(id)) }

func jsonString(id uint64) string {
	b, _ := json.Marshal(id)
	return string(b)
}
