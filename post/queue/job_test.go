package queue

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/the-red/zkpost/post"
)

// newJob writes a job by hand; it must be what encoding/json writes for gocraft/work's job, so
// that gocraft/work, its web UI and our decoder read it as before.
func FuzzNewJobIsWhatEncodingJSONWrites(f *testing.F) {
	f.Add(uint64(1)<<62, uint64(9), "hé <b>&</b> \"q\" \\ \n 🎉 \xff", "https://e.com/?a=1&b=<2>", `{"title":"t"}`, int64(1_700_000_000_123))
	f.Add(uint64(0), uint64(0), "", "", "", int64(0))
	f.Fuzz(func(t *testing.T, id, uid uint64, contents, url, scrap string, ms int64) {
		p := post.Post{ID: id, UserID: uid, Contents: contents, URL: url, CreatedAt: time.UnixMilli(ms).UTC()}
		if json.Valid([]byte(scrap)) {
			p.Scrap = json.RawMessage(scrap)
		}
		now := time.UnixMilli(ms)
		got := newJob(p, now)
		var j job
		if err := json.Unmarshal(got, &j); err != nil {
			t.Fatalf("newJob wrote invalid JSON %s: %v", got, err)
		}
		want, err := json.Marshal(job{Name: JobName, ID: j.ID, EnqueuedAt: now.Unix(), Args: p.Args()})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("newJob\n got %s\nwant %s", got, want)
		}
		if len(j.ID) != 24 {
			t.Fatalf("job id %q: want 24 hex digits", j.ID)
		}
	})
}
