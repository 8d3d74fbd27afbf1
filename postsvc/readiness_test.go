package postsvc

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestReadiness covers each class of failing check: a capability the daemon needs to be routed
// traffic (write, read) makes it 503; one it can serve without (read_db, discovery) leaves it 200
// but degraded, and the body says which capability is gone and why.
func TestReadiness(t *testing.T) {
	ok := func() error { return nil }
	bad := func() error { return errors.New("down") }
	names := []string{"zookeeper", "registered", "guid", "cache_nodes", "queue", "db"}
	checks := func(failing ...string) []Check {
		var cs []Check
		for _, n := range append(names, "something_new") {
			f := ok
			if slices.Contains(failing, n) {
				f = bad
			}
			cs = append(cs, Check{Name: n, OK: f})
		}
		return cs
	}
	tests := []struct {
		name    string
		failing []string
		status  int
		doc     string
		lost    []string
	}{
		{"all well", nil, 200, "ready", nil},
		{"reference tree: no R/db", []string{"db"}, 200, "degraded", []string{"read_db"}},
		{"ZooKeeper down after start", []string{"zookeeper", "registered"}, 200, "degraded", []string{"discovery"}},
		{"no guid", []string{"guid"}, 503, "not_ready", []string{"write"}},
		{"no queue", []string{"queue"}, 503, "not_ready", []string{"write"}},
		{"no cache ring", []string{"cache_nodes"}, 503, "not_ready", []string{"write", "read"}},
		{"unknown check", []string{"something_new"}, 503, "not_ready", []string{"write", "read"}},
		{"started without ZooKeeper", names, 503, "not_ready", []string{"write", "read", "read_db", "discovery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{ready: checks(tt.failing...)}
			var ctx fasthttp.RequestCtx
			s.handleReadyz(&ctx)
			var doc ReadinessDoc
			if err := json.Unmarshal(ctx.Response.Body(), &doc); err != nil {
				t.Fatal(err)
			}
			if ctx.Response.StatusCode() != tt.status || doc.Status != tt.doc || len(doc.Reasons) != len(tt.failing) {
				t.Fatalf("got %d %+v, want %d %s with %d reasons", ctx.Response.StatusCode(), doc, tt.status, tt.doc, len(tt.failing))
			}
			for c, up := range doc.Capabilities {
				if up == slices.Contains(tt.lost, c) {
					t.Errorf("capability %s = %v, want %v", c, up, !up)
				}
			}
			if len(doc.Capabilities) != 4 {
				t.Errorf("capabilities %v, want write, read, read_db and discovery", doc.Capabilities)
			}
		})
	}
}
