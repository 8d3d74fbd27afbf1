package scrap

import (
	"encoding/json"
	"net/url"
	"testing"
)

// TestCorpusThroughFetchPath runs the extraction corpus through the whole fetch path: a real
// Service (guard, robots, decompression, limits, cache) behind the real HTTP server, asked over
// HTTP the way postsvc asks, against a local server holding the fixtures.
func TestCorpusThroughFetchPath(t *testing.T) {
	cases := corpusCases(t)
	srv := corpusServer(t, cases)
	cfg := testConfig()
	cfg.Robots = true // the corpus server answers 404 for robots.txt: allow all
	s := newTestService(t, cfg, Deps{})
	base := startServer(t, s.Scrap)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			status, env := get(t, base+"/api/v1/scrap?url="+url.QueryEscape(srv.URL+c.Path))
			if status != 200 || env.Code != 0 {
				t.Fatalf("got %d %+v, want 200 with a preview", status, env)
			}
			want, err := json.Marshal(c.Want(t, srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			var got Preview
			if err := json.Unmarshal(env.Scrap, &got); err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			if string(gotJSON) != string(want) {
				t.Errorf("preview through the fetch path:\n got  %s\n want %s", gotJSON, want)
			}
		})
	}
}
