package scrap

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/unicode"
)

const testPage = "https://example.com/dir/page.html"

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// TestExtractRules checks one field per case for the rules most easily broken.
func TestExtractRules(t *testing.T) {
	tests := []struct {
		name, html, field, want string // want: the field as JSON
	}{
		{"og first of duplicates", `<meta property=og:title content=a><meta property=og:title content=b>`, "title", `"a"`},
		{"empty og skipped", `<meta property=og:title content=""><meta property=og:title content=b>`, "title", `"b"`},
		{"og beats twitter beats title", `<title>t</title><meta name=twitter:title content=tw><meta property=og:title content=og>`, "title", `"og"`},
		{"twitter beats title", `<title>t</title><meta name=twitter:title content=tw>`, "title", `"tw"`},
		{"first non-empty title", `<title> </title><title>second</title>`, "title", `"second"`},
		{"svg title ignored", `<svg><title>icon</title></svg>`, "title", `null`},
		{"title after svg", `<svg><title>icon</title></svg><title>real</title>`, "title", `"real"`},
		{"property any case", `<meta PROPERTY="Og:Title" content=x>`, "title", `"x"`},
		{"key with spaces", `<meta property=" og:title " content=x>`, "title", `"x"`},
		{"entities decoded once", `<meta property=og:title content="a &amp;amp; b &lt;">`, "title", `"a \u0026amp; b \u003c"`},
		{"numeric entities", `<meta property=og:title content="&#39;&#x41;&#8364;">`, "title", `"'A€"`},
		{"whitespace collapsed", "<title>\n a \t\r\n b \n</title>", "title", `"a b"`},
		{"invalid utf-8 replaced", "<title>a\xffb</title>", "title", "\"a\uFFFDb\""},
		{"description fallback", `<meta name=description content=d>`, "description", `"d"`},
		{"og description first", `<meta name=description content=d><meta property=og:description content=o>`, "description", `"o"`},
		{"type", `<meta property=og:type content=article>`, "type", `"article"`},
		{"type absent", ``, "type", `null`},
		{"url defaults to page", ``, "url", `"https://example.com/dir/page.html"`},
		{"canonical", `<link rel=canonical href=/c>`, "url", `"https://example.com/c"`},
		{"og url beats canonical", `<link rel=canonical href=/c><meta property=og:url content=/o>`, "url", `"https://example.com/o"`},
		{"javascript og url skipped", `<meta property=og:url content="javascript:x"><link rel=canonical href=/c>`, "url", `"https://example.com/c"`},
		{"icon default", ``, "icon", `"https://example.com/favicon.ico"`},
		{"icon default ignores base", `<base href="https://cdn.example.net/x/">`, "icon", `"https://example.com/favicon.ico"`},
		{"shortcut icon", `<link rel="SHORTCUT ICON" href=s.ico>`, "icon", `"https://example.com/dir/s.ico"`},
		{"icon beats apple touch icon", `<link rel=apple-touch-icon href=/a.png><link rel=icon href=/i.png>`, "icon", `"https://example.com/i.png"`},
		{"apple touch icon fallback", `<link rel=apple-touch-icon href=/a.png>`, "icon", `"https://example.com/a.png"`},
		{"mask-icon is not an icon", `<link rel=mask-icon href=/m.svg>`, "icon", `"https://example.com/favicon.ico"`},
		{"protocol relative keeps page scheme", `<meta property=og:image content=//cdn.example.net/i.png>`, "image", `"https://cdn.example.net/i.png"`},
		{"relative to page", `<meta property=og:image content=i.png>`, "image", `"https://example.com/dir/i.png"`},
		{"relative to base", `<base href=/b/><meta property=og:image content=i.png>`, "image", `"https://example.com/b/i.png"`},
		{"base after use still applies", `<meta property=og:image content=i.png><base href=/b/>`, "image", `"https://example.com/b/i.png"`},
		{"data image dropped", `<meta property=og:image content="data:image/png;base64,AA">`, "image", `null`},
		{"uppercase javascript dropped", `<meta property=og:image content="JAVASCRIPT:x">`, "image", `null`},
		{"control chars around url stripped", "<meta property=og:image content=\"\x01 /i.png\x02\">", "image", `"https://example.com/i.png"`},
		{"images never null", ``, "images", `[]`},
		{"image width px", `<meta property=og:image content=/i.png><meta property=og:image:width content=10px>`, "images", `[{"url":"https://example.com/i.png","width":10,"height":null,"alt":null}]`},
		{"image width garbage", `<meta property=og:image content=/i.png><meta property=og:image:width content=-5>`, "images", `[{"url":"https://example.com/i.png","width":null,"height":null,"alt":null}]`},
		{"image width huge", `<meta property=og:image content=/i.png><meta property=og:image:width content=99999999999999999999>`, "images", `[{"url":"https://example.com/i.png","width":null,"height":null,"alt":null}]`},
		{"secure url replaces http", `<meta property=og:image content=http://e.com/i.png><meta property=og:image:secure_url content=https://e.com/i.png>`, "image", `"https://e.com/i.png"`},
		{"secure url alone", `<meta property=og:image:secure_url content=https://e.com/s.png>`, "image", `"https://e.com/s.png"`},
		{"twitter image fallback", `<meta name=twitter:image content=/t.png>`, "image", `"https://example.com/t.png"`},
		{"article author", `<meta name=author content=m><meta property=article:author content=a>`, "author", `"a"`},
		{"article author url loses", `<meta property=article:author content=https://fb.com/a><meta name=twitter:creator content=@c>`, "author", `"@c"`},
		{"meta author beats twitter creator", `<meta name=twitter:creator content=@c><meta name=author content=m>`, "author", `"m"`},
		{"site name", `<meta property=og:site_name content=s>`, "site_name", `"s"`},
		{"locale", `<meta property=og:locale content=fr_FR>`, "locale", `"fr_FR"`},
		{"meta in noscript unseen", `<noscript><meta property=og:title content=n></noscript>`, "title", `null`},
		{"meta in script unseen", `<script>"<meta property=og:title content=s>"</script>`, "title", `null`},
		{"meta in comment unseen", `<!-- <meta property=og:title content=c> -->`, "title", `null`},
		{"meta in body", `<body><p>x</p><meta property=og:title content=b></body>`, "title", `"b"`},
		{"meta after html end", `</html><meta property=og:title content=late>`, "title", `"late"`},
	}
	page := mustURL(t, testPage)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Extract([]byte(tt.html), page)
			if err != nil {
				t.Fatal(err)
			}
			if got := previewField(p, tt.field); got != tt.want {
				t.Errorf("%s: got %s, want %s", tt.field, got, tt.want)
			}
		})
	}
}

func TestExtractTruncatesAtRuneBoundary(t *testing.T) {
	doc := "<title>" + strings.Repeat("é", maxTextBytes) + "</title><meta name=description content=\"" +
		strings.Repeat("x ", maxTextBytes) + "\">"
	p, err := Extract([]byte(doc), mustURL(t, testPage))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(*p.Title); got != maxTextBytes { // é is 2 bytes and maxTextBytes is even
		t.Errorf("title length: got %d, want %d", got, maxTextBytes)
	}
	if !utf8.ValidString(*p.Title) {
		t.Errorf("title is not valid UTF-8")
	}
	if got := *p.Description; len(got) > maxTextBytes || strings.HasSuffix(got, " ") {
		t.Errorf("description: got %d bytes ending %q, want at most %d, no trailing space", len(got), got[len(got)-2:], maxTextBytes)
	}
}

func TestExtractBoundsImages(t *testing.T) {
	var b strings.Builder
	for i := range 1000 {
		b.WriteString(`<meta property=og:image content="/i` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `.png">`)
	}
	p, err := Extract([]byte(b.String()), mustURL(t, testPage))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Images) != maxImages {
		t.Errorf("images: got %d, want %d", len(p.Images), maxImages)
	}
}

func TestExtractNonWebPageURL(t *testing.T) {
	for _, page := range []string{"file:///etc/passwd", "", "/relative"} {
		p, err := Extract([]byte(`<meta property=og:image content=/i.png><link rel=canonical href=/c>`), mustURL(t, page))
		if err != nil {
			t.Fatal(err)
		}
		if p.URL != nil || p.Icon != nil || p.Image != nil {
			t.Errorf("page %q: got url %v icon %v image %v, want all null", page, p.URL, p.Icon, p.Image)
		}
	}
	p, err := Extract([]byte(`<meta property=og:image content=https://e.com/i.png>`), nil)
	if err != nil || p.Image == nil || *p.Image != "https://e.com/i.png" {
		t.Errorf("nil page URL: got %v, %v; want the absolute image kept", p, err)
	}
}

func encode(tb testing.TB, e encoding.Encoding, s string) []byte {
	tb.Helper()
	b, err := e.NewEncoder().Bytes([]byte(s))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	const ko, ja, ru = "한국어 페이지", "日本語のページ", "Русская страница"
	utf16 := encode(t, unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), "<title>Grüße</title>")
	utf16be := encode(t, unicode.UTF16(unicode.BigEndian, unicode.UseBOM), "<title>Grüße</title>")
	tests := []struct {
		name        string
		body        []byte
		contentType string
		want        string
	}{
		{"utf-8 header", []byte("<p>héllo</p>"), "text/html; charset=utf-8", "<p>héllo</p>"},
		{"euc-kr header", encode(t, korean.EUCKR, ko), "text/html; charset=EUC-KR", ko},
		{"ks_c_5601-1987 label", encode(t, korean.EUCKR, ko), "text/html; charset=ks_c_5601-1987", ko},
		{"shift_jis header", encode(t, japanese.ShiftJIS, ja), "text/html; charset=Shift_JIS", ja},
		{"x-sjis label", encode(t, japanese.ShiftJIS, ja), "text/html; charset=x-sjis", ja},
		{"windows-1251 header", encode(t, charmap.Windows1251, ru), "text/html; charset=windows-1251", ru},
		{"quoted header charset", encode(t, charmap.Windows1251, ru), `text/html; charset="windows-1251"`, ru},
		{"malformed header", encode(t, charmap.Windows1251, ru), `text/html;; charset=windows-1251; charset=x`, ru},
		{"meta charset", append([]byte(`<meta charset="euc-kr">`), encode(t, korean.EUCKR, ko)...), "text/html", `<meta charset="euc-kr">` + ko},
		{"meta charset unquoted upper", append([]byte(`<META CHARSET=SHIFT_JIS>`), encode(t, japanese.ShiftJIS, ja)...), "", `<META CHARSET=SHIFT_JIS>` + ja},
		{"http-equiv", append([]byte(`<meta http-equiv="content-type" content="text/html;charset=windows-1251">`), encode(t, charmap.Windows1251, ru)...), "text/html",
			`<meta http-equiv="content-type" content="text/html;charset=windows-1251">` + ru},
		{"content without pragma ignored", append([]byte(`<meta content="text/html;charset=windows-1251">`), "é"...), "text/html",
			`<meta content="text/html;charset=windows-1251">é`},
		{"header beats stale meta", []byte(`<meta charset="iso-8859-1">é`), "text/html; charset=utf-8", `<meta charset="iso-8859-1">é`},
		{"meta in script ignored", append([]byte(`<script>"<meta charset=windows-1251>"</script>`), 0xE9), "text/html", `<script>"<meta charset=windows-1251>"</script>é`},
		{"utf-8 bom beats header", []byte("\xEF\xBB\xBFé"), "text/html; charset=windows-1251", "é"},
		{"utf-16le bom", utf16, "text/html", "<title>Grüße</title>"},
		{"utf-16be bom", utf16be, "text/html; charset=utf-8", "<title>Grüße</title>"},
		{"meta utf-16 means utf-8", []byte(`<meta charset="utf-16">é`), "text/html", `<meta charset="utf-16">é`},
		{"unknown header label falls to meta", append([]byte(`<meta charset=windows-1251>`), encode(t, charmap.Windows1251, ru)...), "text/html; charset=bogus",
			`<meta charset=windows-1251>` + ru},
		{"unknown meta label ignored", []byte(`<meta charset=bogus>é`), "", `<meta charset=bogus>é`},
		{"undeclared utf-8", []byte("déjà vu"), "text/html", "déjà vu"},
		{"undeclared utf-8 cut mid-rune", []byte("déjà vu \xE6\x97"), "text/html", "déjà vu \uFFFD"},
		{"undeclared latin-1", []byte("caf\xE9 \x80"), "text/html", "café €"},
		{"invalid utf-8 replaced", []byte("a\xFFb"), "text/html; charset=utf-8", "a\uFFFDb"},
		{"xml declaration", append([]byte(`<?xml version="1.0" encoding="Shift_JIS"?>`), encode(t, japanese.ShiftJIS, ja)...), "application/xhtml+xml",
			`<?xml version="1.0" encoding="Shift_JIS"?>` + ja},
		{"x-user-defined meta is windows-1252", []byte(`<meta charset=x-user-defined>` + "\x80"), "", `<meta charset=x-user-defined>€`},
		{"empty", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.body, tt.contentType)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeMetaAfter1024Bytes(t *testing.T) {
	body := append([]byte("<!--"+strings.Repeat("x", 2000)+"--><meta charset=windows-1251>"), encode(t, charmap.Windows1251, "Мир")...)
	got, err := Decode(body, "text/html")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(got, []byte("Мир")) {
		t.Errorf("got %q, want it to end in Мир", got[len(got)-10:])
	}
}

// corpusSeeds returns the corpus' raw bodies and content types, to seed the fuzzers.
func corpusSeeds(tb testing.TB) (bodies [][]byte, contentTypes []string) {
	tb.Helper()
	paths, _ := filepath.Glob(filepath.Join("testdata", "corpus", "*.html"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		c := loadCorpusCase(tb, strings.TrimSuffix(p, ".html")+".json")
		bodies, contentTypes = append(bodies, b), append(contentTypes, c.ContentType)
	}
	return bodies, contentTypes
}

func FuzzExtract(f *testing.F) {
	bodies, _ := corpusSeeds(f)
	for i, b := range bodies {
		page := []string{testPage, "http://127.0.0.1:8080/a/b?c=d", "https://xn--r8jz45g.jp/"}[i%3]
		f.Add(b, page)
	}
	f.Add([]byte(`<base href="//evil"><meta property=og:image content="x">`), "http://h/")
	f.Add([]byte(`<meta property=og:url content="http://[::1">`), "http://h/")
	f.Add([]byte(""), "http://0?\xb2")
	f.Fuzz(func(t *testing.T, doc []byte, page string) {
		pageURL, err := url.Parse(page)
		if err != nil {
			pageURL = nil
		}
		p, err := Extract(doc, pageURL)
		if err != nil {
			t.Fatal(err)
		}
		checkPreview(t, p)
	})
}

// checkPreview asserts what every Preview promises, whatever the input.
func checkPreview(t *testing.T, p *Preview) {
	t.Helper()
	for _, u := range []*string{p.URL, p.Icon, p.Image} {
		if u != nil {
			checkWebURL(t, *u)
		}
	}
	for _, s := range []*string{p.Title, p.Type, p.Description, p.Author, p.SiteName, p.Locale} {
		if s != nil && (*s == "" || len(*s) > maxTextBytes || !utf8.ValidString(*s)) {
			t.Errorf("text field %q: want non-empty valid UTF-8 of at most %d bytes", *s, maxTextBytes)
		}
	}
	if p.Images == nil || len(p.Images) > maxImages {
		t.Fatalf("images: got %d (nil %t), want a non-nil list of at most %d", len(p.Images), p.Images == nil, maxImages)
	}
	if (p.Image == nil) != (len(p.Images) == 0) || p.Image != nil && *p.Image != p.Images[0].URL {
		t.Errorf("image %v must be images[0].url", p.Image)
	}
	for _, im := range p.Images {
		checkWebURL(t, im.URL)
		if im.Alt != nil && !utf8.ValidString(*im.Alt) || im.Width != nil && *im.Width < 0 || im.Height != nil && *im.Height < 0 {
			t.Errorf("image %+v: bad alt or size", im)
		}
	}
}

func checkWebURL(t *testing.T, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !utf8.ValidString(s) {
		t.Errorf("URL %q: want an absolute http(s) URL (%v)", s, err)
	}
}

func FuzzDecode(f *testing.F) {
	bodies, types := corpusSeeds(f)
	for i := range bodies {
		f.Add(bodies[i], types[i])
	}
	f.Add([]byte("\xFE\xFF\x00"), "text/html")
	f.Add([]byte("<meta charset=iso-2022-kr>abc"), "text/html")
	f.Add([]byte("0"), "\xb4ChArset=")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		got, err := Decode(body, contentType)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(got) {
			t.Fatalf("Decode(%q, %q) = %q: not valid UTF-8", body, contentType, got)
		}
		if utf8.Valid(body) && !bytes.HasPrefix(body, []byte("\xEF\xBB\xBF")) &&
			strings.EqualFold(headerCharset(contentType), "utf-8") && !bytes.Equal(got, body) {
			t.Fatalf("valid UTF-8 declared as UTF-8 changed: got %q, want %q", got, body)
		}
	})
}
