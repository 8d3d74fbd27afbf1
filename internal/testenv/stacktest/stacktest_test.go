package stacktest

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/the-red/zkpost/post"
)

// fatalTB records the first Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// walk runs Walk on a fake TB and returns its ids or its failure.
func walk(limit int, page func(f uint64) (Page, error)) ([]uint64, string) {
	tb := &fatalTB{}
	var ids []uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		ids = Walk(tb, 7, limit, page)
	}()
	<-done
	return ids, tb.msg
}

// pages serves ids newest first, limit per page, with next_id the next page's first id.
func pages(ids []uint64) func(limit int) func(f uint64) (Page, error) {
	return func(limit int) func(f uint64) (Page, error) {
		return func(f uint64) (Page, error) {
			i := 0
			if f != 0 {
				i = slices.Index(ids, f)
			}
			var p Page
			for _, id := range ids[i:min(i+limit, len(ids))] {
				p.Posts = append(p.Posts, post.Post{ID: id})
			}
			if i+limit < len(ids) {
				s := strconv.FormatUint(ids[i+limit], 10)
				p.NextID = &s
			}
			return p, nil
		}
	}
}

func TestWalk(t *testing.T) {
	ids := []uint64{90, 80, 70, 60, 50}
	for limit := 1; limit <= 6; limit++ {
		got, msg := walk(limit, pages(ids)(limit))
		if msg != "" || !slices.Equal(got, ids) {
			t.Errorf("limit %d: got %v (%q), want %v", limit, got, msg, ids)
		}
	}
	next := func(s string) *string { return &s }
	for _, tc := range []struct {
		name, want string
		page       func(f uint64) (Page, error)
	}{
		{"short page with a cursor", "short page", func(uint64) (Page, error) {
			return Page{Posts: []post.Post{{ID: 1}}, NextID: next("0")}, nil
		}},
		{"page over the limit", "limit 2", func(uint64) (Page, error) {
			return Page{Posts: []post.Post{{ID: 3}, {ID: 2}, {ID: 1}}}, nil
		}},
		{"cursor not an id", "next_id", func(uint64) (Page, error) {
			return Page{Posts: []post.Post{{ID: 3}, {ID: 2}}, NextID: next("x")}, nil
		}},
		{"cursor that loops", "does not end", func(uint64) (Page, error) {
			return Page{Posts: []post.Post{{ID: 3}, {ID: 2}}, NextID: next("3")}, nil
		}},
		{"failed read", "boom", func(uint64) (Page, error) { return Page{}, fmt.Errorf("boom") }},
	} {
		if _, msg := walk(2, tc.page); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: got failure %q, want one mentioning %q", tc.name, msg, tc.want)
		}
	}
}

func TestDecodePage(t *testing.T) {
	p, err := decodePage(200, []byte(`{"posts":[{"post_id":5,"user_id":1,"contents":"x","created_at":"2026-01-02T03:04:05.006Z"}],"next_id":null}`))
	if err != nil || !slices.Equal(p.IDs(), []uint64{5}) || p.NextID != nil {
		t.Fatalf("got %+v %v, want one post 5 and no cursor", p, err)
	}
	if _, err := decodePage(400, []byte(`{"error":"bad"}`)); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("status 400: got %v, want an error naming it", err)
	}
	if got := pagePath(7, 0, 3); got != "/api/v1/posts/7?limit=3" {
		t.Fatalf("pagePath: got %q", got)
	}
	if got := pagePath(7, 42, 3); got != "/api/v1/posts/7?f=42&limit=3" {
		t.Fatalf("pagePath with f: got %q", got)
	}
}
