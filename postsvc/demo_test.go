package postsvc

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/net/html"

	"github.com/the-red/zkpost/post"
)

// TestDemoRefusedPostKeepsTimelineAndInput: a refused form post shows the user's timeline and
// the text and link that were typed, not "No posts yet." and an empty form.
func TestDemoRefusedPostKeepsTimelineAndInput(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.write(3, "an earlier post", "")
	for _, form := range []url.Values{
		{"user_id": {"3"}, "contents": {"   "}, "url": {"https://example.com/typed"}},
		{"user_id": {"3"}, "contents": {"typed <text> & more"}, "url": {"javascript:alert(1)"}},
	} {
		resp, err := h.hc.PostForm(h.base+"/demo", form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		if resp.StatusCode != 400 {
			t.Fatalf("refused form post: got %d, want 400", resp.StatusCode)
		}
		if !strings.Contains(page, "an earlier post") || strings.Contains(page, "No posts yet.") {
			t.Errorf("refused form post of %v: the timeline is not shown:\n%s", form, page)
		}
		if !strings.Contains(page, template.HTMLEscapeString(form.Get("contents"))+"</textarea>") {
			t.Errorf("refused form post: the typed contents %q are lost", form.Get("contents"))
		}
		if !strings.Contains(page, `value="`+template.HTMLEscapeString(form.Get("url"))+`"`) {
			t.Errorf("refused form post: the typed url %q is lost", form.Get("url"))
		}
	}
}

// TestDemoOlderPageLinksBackToNewest: a page reached with "older posts" links back to the newest
// posts and does not follow the stream; the newest page does.
func TestDemoOlderPageLinksBackToNewest(t *testing.T) {
	h := newHarness(t, 1, nil)
	for i := range demoPageSize + 5 {
		h.write(4, fmt.Sprintf("post %d", i), "")
	}
	top := string(h.do("GET", "/demo?user_id=4", "").body)
	older := hrefs(t, top, "older posts")
	if len(older) != 1 || !strings.Contains(top, "<script>") || strings.Contains(top, "newest posts") {
		t.Fatalf("newest page: got older links %v, script %v; want one older link, the script, no newest link", older, strings.Contains(top, "<script>"))
	}
	r := h.do("GET", older[0], "")
	if r.status != 200 {
		t.Fatalf("older page: got %d", r.status)
	}
	back := hrefs(t, string(r.body), "← newest posts")
	if len(back) == 0 || back[0] != "/demo?user_id=4" {
		t.Fatalf("older page: got newest links %v, want /demo?user_id=4", back)
	}
	if strings.Contains(string(r.body), "<script>") {
		t.Error("older page follows the stream: new posts would land on a page of old ones")
	}
}

// hrefs returns the targets of the page's links whose text is text.
func hrefs(t *testing.T, page, text string) []string {
	t.Helper()
	var out []string
	for _, a := range anchors(t, page) {
		if a.text == text {
			out = append(out, a.href)
		}
	}
	return out
}

type anchor struct{ class, href, text string }

func anchors(t *testing.T, page string) []anchor {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parsing the page: %v", err)
	}
	var out []anchor
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			a := anchor{}
			for _, at := range n.Attr {
				switch at.Key {
				case "href":
					a.href = at.Val
				case "class":
					a.class = at.Val
				}
			}
			var text strings.Builder
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.TextNode {
					text.WriteString(c.Data)
				}
			}
			a.text = text.String()
			out = append(out, a)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// invisibleRunes is the class of characters that can make a link read as something it is not:
// controls, format characters (bidi controls, zero-width joiners), separators other than the
// ASCII space, combining marks, variation selectors and other default-ignorable code points.
func invisibleRunes() []rune {
	tables := []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Zs, unicode.Zl, unicode.Zp, unicode.Mn,
		unicode.Me, unicode.Bidi_Control, unicode.Join_Control, unicode.Variation_Selector,
		unicode.Other_Default_Ignorable_Code_Point, unicode.White_Space}
	var out []rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.IsOneOf(tables, r) {
			out = append(out, r)
		}
	}
	return out
}

// checkShownIsLinked renders u as the page does and checks that the text shown is exactly the
// href, printable ASCII, and decodes back to u.
func checkShownIsLinked(t *testing.T, tmpl *template.Template, u string) {
	t.Helper()
	v := visibleURL(u)
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		t.Fatal(err)
	}
	as := anchors(t, buf.String())
	if len(as) != 1 || as[0].href != as[0].text {
		t.Fatalf("visibleURL(%q): rendered %q: the text shown is not the href", u, buf.String())
	}
	for _, c := range []byte(v) {
		if c <= ' ' || c >= 0x7f {
			t.Fatalf("visibleURL(%q) = %q: shows byte %#x", u, v, c)
		}
	}
	if back, err := url.PathUnescape(v); err != nil || (back != u && !strings.Contains(u, "%")) {
		t.Fatalf("visibleURL(%q) = %q: decodes to %q (%v), want the stored url", u, v, back, err)
	}
}

func TestVisibleURLShowsEveryInvisibleCharacter(t *testing.T) {
	tmpl := template.Must(template.New("a").Parse(`<a class="link" href="{{.}}">{{.}}</a>`))
	runes := invisibleRunes()
	if len(runes) < 2000 {
		t.Fatalf("class of invisible characters: got %d runes, the tables are missing", len(runes))
	}
	for _, r := range runes {
		checkShownIsLinked(t, tmpl, "https://example.com/a"+string(r)+"b?q="+string(r))
	}
	for c := byte(0); c < 0x80; c++ {
		checkShownIsLinked(t, tmpl, "https://example.com/"+string(rune(c))+"x")
	}
	checkShownIsLinked(t, tmpl, "https://例え.jp/ä?x=%41%zz")
}

// TestDemoShowsStoredLinksAsLinked stores posts whose urls carry bidi controls and invisible
// characters (as a database written before url input refused them may hold) and checks every
// post link on the rendered page shows exactly its href.
func TestDemoShowsStoredLinksAsLinked(t *testing.T) {
	h := newHarness(t, 1, nil)
	hostile := []string{"https://evil.example/\u202Egpj.exe", "https://example.com/\u200Bpay", "https://a.example/\u2066x\u2069",
		"https://b.example/x\u0338y", "https://c.example/\uFE0F\u180E\u3164", "https://d.example/\u00A0\u2028\u2029",
		"https://e.example/\"><script>alert(1)</script>", "https://f.example/\u061C\u200E\u200F"}
	h.db.mu.Lock()
	for i, u := range hostile {
		id := bigIDBase + uint64(i)*7
		h.db.rows[id] = post.Post{ID: id, UserID: 5, Contents: "stored", URL: u, CreatedAt: CreatedAt(id)}
	}
	h.db.mu.Unlock()
	page := string(h.do("GET", "/demo?user_id=5", "").body)
	var links []anchor
	for _, a := range anchors(t, page) {
		if a.class == "link" {
			links = append(links, a)
		}
	}
	want := 0
	for _, u := range hostile {
		if safeURL(u) != "" {
			want++
		}
	}
	if len(links) != want || want < len(hostile)-1 {
		t.Fatalf("got %d post links, want %d of %d (only a url that does not parse is not linked):\n%s", len(links), want, len(hostile), page)
	}
	for _, a := range links {
		if a.href != a.text || strings.ContainsFunc(a.text, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			t.Errorf("post link shows %q, links %q", a.text, a.href)
		}
	}
}

func FuzzVisibleURL(f *testing.F) {
	for _, s := range []string{"https://example.com/", "https://x/\u202e", "%", "%4", "%41", "a b", "\xff\xfe"} {
		f.Add(s)
	}
	tmpl := template.Must(template.New("a").Parse(`<a class="link" href="{{.}}">{{.}}</a>`))
	f.Fuzz(func(t *testing.T, u string) {
		if !strings.HasPrefix(u, "https://") {
			u = "https://example.com/" + u
		}
		checkShownIsLinked(t, tmpl, u)
	})
}
