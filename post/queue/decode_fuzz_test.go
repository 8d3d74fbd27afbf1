package queue

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/the-red/zkpost/post"
)

// FuzzDecodeJob feeds arbitrary job documents through the path a fetched job takes: the
// JSON decoding of gocraft's job document, then decodeJob. It must never panic, and whatever it
// accepts must survive the trip back through post.Args unchanged.
func FuzzDecodeJob(f *testing.F) {
	good := newJob(post.Post{ID: 1<<63 - 5, UserID: 42, Contents: "hé 🎉", URL: "https://e.com/",
		Scrap: json.RawMessage(`{"title":"t"}`), CreatedAt: time.UnixMilli(1_700_000_000_123).UTC()}, time.Unix(1, 0))
	for _, seed := range []string{
		string(good),
		`{"name":"persist_post","id":"x","t":1,"args":{"post_id":1.2e18,"user_id":1}}`,
		`{"args":{"post_id":"1","user_id":"2","contents":"","url":"","created_at":"2024-01-01T00:00:00Z","scrap":""}}`,
		`{"args":{"post_id":"-1","user_id":"2","contents":"","url":"","created_at":"x","scrap":"{"}}`,
		`{"args":{"post_id":"18446744073709551616"}}`,
		`{"args":null}`,
		`{}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var j job
		if json.Unmarshal(raw, &j) != nil {
			return
		}
		p, err := decodeJob(j.Args)
		if err != nil {
			return
		}
		b, err := json.Marshal(p.Args())
		if err != nil {
			t.Fatalf("encoding args of an accepted post: %v", err)
		}
		var args map[string]any
		if err := json.Unmarshal(b, &args); err != nil {
			t.Fatal(err)
		}
		again, err := post.FromArgs(args)
		if err != nil {
			t.Fatalf("accepted %q but not its own re-encoding %s: %v", raw, b, err)
		}
		if again.ID != p.ID || again.UserID != p.UserID || again.Contents != p.Contents || again.URL != p.URL ||
			!again.CreatedAt.Equal(p.CreatedAt) || string(again.Scrap) != string(p.Scrap) {
			t.Fatalf("round trip changed the post: %+v → %+v", p, again)
		}
	})
}
