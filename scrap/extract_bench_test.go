package scrap

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/otiai10/opengraph/v2"
)

// benchDoc is one decoded page and the URL it was served from.
type benchDoc struct {
	html []byte
	page *url.URL
}

// corpusDocs decodes the whole corpus up front, so the benchmarks time extraction alone.
func corpusDocs(tb testing.TB) ([]benchDoc, int64) {
	tb.Helper()
	const origin = "http://127.0.0.1:8020"
	var docs []benchDoc
	var total int64
	for _, c := range corpusCases(tb) {
		html, err := Decode(c.BodyFor(origin), c.ContentType)
		if err != nil {
			tb.Fatal(err)
		}
		docs = append(docs, benchDoc{html: html, page: mustURL(tb, origin+c.Path)})
		total += int64(len(html))
	}
	return docs, total
}

// largePage is a synthetic news article of about 300 KB: a head of meta tags, inline scripts and
// styles, and a body of nested markup, as real pages are.
func largePage() []byte {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>A long article | News</title>`)
	for i := range 40 {
		fmt.Fprintf(&b, `<link rel="preload" href="/static/chunk-%d.js" as="script"><meta name="x-tag-%d" content="value %d">`, i, i, i)
	}
	b.WriteString(`<meta property="og:title" content="A long article"><meta property="og:image" content="/hero.jpg">`)
	b.WriteString(`<meta property="og:image:width" content="1200"><meta property="og:description" content="Long &amp; detailed.">`)
	b.WriteString(`<script>window.__STATE__ = {"items":[` + strings.Repeat(`{"id":1,"html":"<meta name=x>"},`, 2000) + `{}]};</script>`)
	b.WriteString(`<style>` + strings.Repeat(`.c-card__title{font:600 1rem/1.4 system-ui}`, 500) + `</style></head><body>`)
	for i := range 1500 {
		fmt.Fprintf(&b, `<div class="row r%d"><p>Paragraph %d with <a href="/link/%d">a link</a> &amp; <b>bold</b> text.</p>`+
			`<img src="/img/%d.jpg" alt="image %d" width="100" height="80"></div>`, i, i, i, i, i)
	}
	b.WriteString(`</body></html>`)
	return []byte(b.String())
}

// BenchmarkExtract times ours against otiai10/opengraph/v2 over the whole corpus per iteration
// (b.SetBytes: MB/s is the corpus' decoded size), and over one large page.
func BenchmarkExtract(b *testing.B) {
	docs, total := corpusDocs(b)
	large := []benchDoc{{html: largePage(), page: mustURL(b, "https://news.example.com/2024/article.html")}}
	sets := []struct {
		name  string
		docs  []benchDoc
		bytes int64
	}{{"", docs, total}, {"large_page/", large, int64(len(large[0].html))}}
	for _, set := range sets {
		b.Run(set.name+"ours", func(b *testing.B) {
			b.SetBytes(set.bytes)
			b.ReportAllocs()
			for b.Loop() {
				for _, d := range set.docs {
					if _, err := Extract(d.html, d.page); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(set.name+"otiai10", func(b *testing.B) {
			b.SetBytes(set.bytes)
			b.ReportAllocs()
			for b.Loop() {
				for _, d := range set.docs {
					og := opengraph.New(d.page.String())
					if err := og.Parse(bytes.NewReader(d.html)); err != nil {
						b.Fatal(err)
					}
					_ = og.ToAbs() // fails on some fixtures (an og:url with spaces); the parse is what is timed
				}
			}
		})
	}
}

// BenchmarkDecode times charset detection and decoding over the corpus' raw bytes.
func BenchmarkDecode(b *testing.B) {
	cases := corpusCases(b)
	var total int64
	for _, c := range cases {
		total += int64(len(c.Body))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range cases {
			if _, err := Decode(c.Body, c.ContentType); err != nil {
				b.Fatal(err)
			}
		}
	}
}
