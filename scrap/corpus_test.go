package scrap

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusOrigin is the placeholder origin the fixtures' expected URLs are written against; tests
// replace it with the origin of the server that served the fixture.
const corpusOrigin = "http://ORIGIN"

// corpusCase is one fixture of testdata/corpus: NAME.html holds the raw bytes to serve (in any
// charset) and NAME.json the Content-Type to serve them with, an optional request path, and the
// full expected Preview.
type corpusCase struct {
	Name        string
	Body        []byte // may hold the corpusOrigin placeholder: serve BodyFor(origin)
	ContentType string
	Path        string // the request path to serve Body at, always set and unique across the corpus
	want        json.RawMessage
}

// BodyFor returns the bytes to serve from origin: Body with the placeholder origin replaced (every
// fixture charset is ASCII-compatible where the placeholder appears).
func (c corpusCase) BodyFor(origin string) []byte {
	return bytes.ReplaceAll(c.Body, []byte(corpusOrigin), []byte(origin))
}

// Want returns the expected Preview for the fixture served at origin ("http://127.0.0.1:1234").
func (c corpusCase) Want(tb testing.TB, origin string) *Preview {
	tb.Helper()
	raw := bytes.ReplaceAll(c.want, []byte(corpusOrigin), []byte(origin))
	var p Preview
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		tb.Fatalf("fixture %s: decoding want: %v", c.Name, err)
	}
	if p.Images == nil {
		tb.Fatalf("fixture %s: want.images must be a list ([] when none)", c.Name)
	}
	return &p
}

// corpusCases loads every fixture of testdata/corpus, sorted by name. The fetch half's tests reuse
// it to run the same corpus through the real Fetcher and HTTP server.
func corpusCases(tb testing.TB) []corpusCase {
	tb.Helper()
	metas, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.json"))
	if err != nil || len(metas) == 0 {
		tb.Fatalf("no corpus fixtures found: %v", err)
	}
	sort.Strings(metas)
	seen := map[string]string{}
	cases := make([]corpusCase, 0, len(metas))
	for _, m := range metas {
		c := loadCorpusCase(tb, m)
		if other, dup := seen[c.Path]; dup {
			tb.Fatalf("fixtures %s and %s share the path %s", other, c.Name, c.Path)
		}
		seen[c.Path] = c.Name
		cases = append(cases, c)
	}
	return cases
}

func loadCorpusCase(tb testing.TB, metaPath string) corpusCase {
	tb.Helper()
	name := strings.TrimSuffix(filepath.Base(metaPath), ".json")
	meta, err := os.ReadFile(metaPath)
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		ContentType string          `json:"content_type"`
		Path        string          `json:"path"`
		Want        json.RawMessage `json:"want"`
	}
	dec := json.NewDecoder(bytes.NewReader(meta))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		tb.Fatalf("fixture %s: %v", name, err)
	}
	body, err := os.ReadFile(strings.TrimSuffix(metaPath, ".json") + ".html")
	if err != nil {
		tb.Fatalf("fixture %s: %v", name, err)
	}
	if f.Path == "" {
		f.Path = "/" + name + ".html"
	}
	if !strings.HasPrefix(f.Path, "/") || len(f.Want) == 0 {
		tb.Fatalf("fixture %s: path must start with / and want must be set", name)
	}
	return corpusCase{Name: name, Body: body, ContentType: f.ContentType, Path: f.Path, want: f.Want}
}

// corpusServer serves every case's BodyFor(server origin) at its Path with its Content-Type.
func corpusServer(tb testing.TB, cases []corpusCase) *httptest.Server {
	tb.Helper()
	byPath := make(map[string]corpusCase, len(cases))
	for _, c := range cases {
		byPath[c.Path] = c
	}
	var origin string // set before the first request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := byPath[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header()["Content-Type"] = []string{c.ContentType} // as written, even when empty or odd
		_, _ = w.Write(c.BodyFor(origin))
	}))
	origin = srv.URL
	tb.Cleanup(srv.Close)
	return srv
}

// fetchRaw GETs rawURL with plain net/http and returns the body, the Content-Type and the final URL.
func fetchRaw(tb testing.TB, client *http.Client, rawURL string) ([]byte, string, *url.URL) {
	tb.Helper()
	resp, err := client.Get(rawURL)
	if err != nil {
		tb.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: status %d, %v", rawURL, resp.StatusCode, err)
	}
	return body, resp.Header.Get("Content-Type"), resp.Request.URL
}

// TestCorpus serves every fixture over HTTP and checks Decode + Extract against its expected preview.
func TestCorpus(t *testing.T) {
	cases := corpusCases(t)
	if len(cases) < 45 {
		t.Errorf("corpus has %d fixtures, want at least 45", len(cases))
	}
	srv := corpusServer(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			body, ctype, final := fetchRaw(t, srv.Client(), srv.URL+c.Path)
			decoded, err := Decode(body, ctype)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, err := Extract(decoded, final)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			for _, d := range diffPreview(got, c.Want(t, srv.URL)) {
				t.Error(d)
			}
		})
	}
}

// previewFields names the Preview's JSON fields in order, for field-by-field comparisons.
var previewFields = []string{"title", "url", "type", "image", "description", "author", "site_name",
	"locale", "icon", "images"}

// previewField returns one field of p as compact JSON, read through Preview's own JSON form so the
// comparison follows the wire names.
func previewField(p *Preview, field string) string {
	b, err := json.Marshal(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return "<" + err.Error() + ">"
	}
	if v, ok := fields[field]; ok {
		return string(v)
	}
	return "<no field " + field + ">"
}

// diffPreview lists the fields where got differs from want, as "field: got X, want Y".
func diffPreview(got, want *Preview) []string {
	var diffs []string
	for _, f := range previewFields {
		if g, w := previewField(got, f), previewField(want, f); g != w {
			diffs = append(diffs, f+": got "+g+", want "+w)
		}
	}
	return diffs
}
