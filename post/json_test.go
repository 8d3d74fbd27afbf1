package post

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The hand-written encoders must write what encoding/json writes, byte for byte: the cache, the
// streams and the queue hold their output, and clients and gocraft/work read it.

func jsonSeeds(f *testing.F) {
	for _, s := range []string{"", "hello", `quote " backslash \ slash /`, "<a href='x'>&amp;</a>",
		"tab\tnl\ncr\rbs\bff\f\x00\x1f\x7f", "日本語の投稿 🎉", "bad utf8 \xff\xfe end", "\u2028\u2029 separators",
		"\xed\xa0\x80 surrogate half", "é"} {
		f.Add(uint64(1)<<60|12345, uint64(42), s, "https://example.com/?q="+s, int64(1_700_000_000_123))
	}
	f.Add(uint64(0), uint64(0), "", "", int64(0))
	f.Add(^uint64(0), ^uint64(0), "x", "", int64(-62135596800000))
}

func FuzzAppendJSON(f *testing.F) {
	jsonSeeds(f)
	f.Fuzz(func(t *testing.T, id, uid uint64, contents, url string, ms int64) {
		p := Post{ID: id, UserID: uid, Contents: contents, URL: url, CreatedAt: time.UnixMilli(ms).UTC()}
		want, err := json.Marshal(p.wire())
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
		if got, err := json.Marshal(p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("json.Marshal(p) = %s, %v\nwant %s", got, err, want)
		}
	})
}

func FuzzAppendArgs(f *testing.F) {
	jsonSeeds(f)
	f.Fuzz(func(t *testing.T, id, uid uint64, contents, url string, ms int64) {
		for _, scrap := range []json.RawMessage{nil, json.RawMessage(`{"title":"` + url + `"}`)} {
			p := Post{ID: id, UserID: uid, Contents: contents, URL: url, Scrap: scrap, CreatedAt: time.UnixMilli(ms).UTC()}
			want, err := json.Marshal(p.Args())
			if err != nil {
				t.Fatal(err)
			}
			if got := p.AppendArgs(nil); !bytes.Equal(got, want) {
				t.Fatalf("AppendArgs\n got %s\nwant %s", got, want)
			}
		}
	})
}

// A post with a link preview goes through encoding/json's own path: the preview is compacted and
// HTML-escaped as json.Marshal does.
func TestAppendJSONWithPreview(t *testing.T) {
	p := Post{ID: 7, UserID: 8, Contents: "c", URL: "https://x.test/", Scrap: json.RawMessage(`{ "title" : "<b>" }`),
		CreatedAt: time.UnixMilli(1_700_000_000_000).UTC()}
	want := `{"post_id":7,"post_id_str":"7","user_id":8,"contents":"c","url":"https://x.test/","scrap":{"title":"\u003cb\u003e"},"created_at":"2023-11-14T22:13:20Z"}`
	if got := string(p.AppendJSON([]byte("prefix:"))); got != "prefix:"+want {
		t.Errorf("AppendJSON = %s, want prefix:%s", got, want)
	}
	p.Scrap = json.RawMessage(`{"title":`) // not JSON: written as an empty preview
	want = `{"post_id":7,"post_id_str":"7","user_id":8,"contents":"c","url":"https://x.test/","scrap":{},"created_at":"2023-11-14T22:13:20Z"}`
	if got := string(p.AppendJSON(nil)); got != want {
		t.Errorf("AppendJSON with a broken preview = %s, want %s", got, want)
	}
}
