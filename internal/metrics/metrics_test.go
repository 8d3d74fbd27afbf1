package metrics

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
)

func serve(h fasthttp.RequestHandler, uri string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(uri)
	h(&ctx)
	return &ctx
}

func TestRouteCountsByStatusAndError(t *testing.T) {
	reg := NewRegistry()
	m := NewHTTP(reg)
	ok := m.Route("guid", func(ctx *fasthttp.RequestCtx) { httpapi.WriteJSON(ctx, 200, map[string]int{"guid": 1}) })
	bad := m.Route("guid", func(ctx *fasthttp.RequestCtx) { httpapi.WriteError(ctx, httpapi.InvalidArgument("count")) })
	serve(ok, "/api/v1/guid")
	serve(ok, "/api/v1/guid")
	serve(bad, "/api/v1/guid?count=0")

	body := string(serve(Handler(reg), "/metrics").Response.Body())
	for _, want := range []string{
		`http_requests_total{route="guid",status="200"} 2`,
		`http_requests_total{route="guid",status="400"} 1`,
		`http_errors_total{error="invalid_argument",route="guid"} 1`,
		`http_request_duration_seconds_count{route="guid",status="200"} 2`,
		`http_request_duration_seconds_count{route="guid",status="400"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestParseTextAndLabel: a page parses into families by name, a sample's label reads by name ("" when
// absent), and a page that is not the text format is an error.
func TestParseTextAndLabel(t *testing.T) {
	fams, err := ParseText(strings.NewReader("# TYPE x_total counter\nx_total{route=\"a\",status=\"200\"} 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	ms := fams["x_total"].GetMetric()
	if len(ms) != 1 || ms[0].GetCounter().GetValue() != 3 {
		t.Fatalf("x_total = %v", ms)
	}
	if got := Label(ms[0], "status"); got != "200" {
		t.Errorf("status label = %q, want 200", got)
	}
	if got := Label(ms[0], "none"); got != "" {
		t.Errorf("absent label = %q, want empty", got)
	}
	if _, err := ParseText(strings.NewReader("x_total{ 3\n")); err == nil {
		t.Error("a broken page parsed without an error")
	}
}
