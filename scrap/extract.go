package scrap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"

	"golang.org/x/net/html"
)

// Bounds on what one page can put in a preview.
const (
	maxTextBytes = 4096 // per text field, cut at a rune boundary
	maxURLBytes  = 4096 // longer URLs are dropped, not cut: a cut URL is a wrong URL
	maxImages    = 16
)

// Extract parses UTF-8 HTML (see Decode) and returns its preview. pageURL is the final URL after
// redirects; it is the base for relative URLs and the url of last resort. It makes one streaming
// pass of html.Tokenizer (no DOM), which decodes entities exactly once and reads <script>, <style>
// and <textarea> contents as text, so markup inside them is not seen.
//
// The rules (issue #3), in priority order for each field; the first non-empty value of a duplicated
// property wins, and an empty content="" counts as absent:
//
//	title        og:title, twitter:title, the first non-empty <title> outside <svg>/<math>
//	description  og:description, twitter:description, <meta name=description>
//	url          og:url, <link rel=canonical>, the final page URL
//	type         og:type
//	image        the first usable og:image (og:image:url is an alias of og:image, og:image:secure_url
//	             replaces an http: or unusable URL), else twitter:image[:src], else <link rel=image_src>
//	images       every usable og:image in order, deduplicated, at most maxImages, with the
//	             og:image:width/height/alt that follow it (before the next og:image); [] when none
//	author       article:author unless it is a profile URL (Facebook's convention), then
//	             <meta name=author>, then twitter:creator, then the article:author URL
//	site_name    og:site_name; locale: og:locale
//	icon         the first <link rel="icon"> (also "shortcut icon"), else rel="apple-touch-icon"
//	             (a big square image, so only a fallback), else /favicon.ico on the page's origin
//
// Properties are read from name= or property= (both, when a tag has both), in any case, anywhere in
// the document: some sites put og tags in <body>. Every URL is resolved against <base href> (the
// first one) and the page URL, and only http/https results are kept. Text is trimmed,
// whitespace-collapsed and cut to maxTextBytes at a rune boundary. Tags inside <noscript> are not
// seen (the tokenizer reads it as raw text, as a scripting browser does).
//
// Absent fields are nil; Images is empty, never nil; Image is Images[0].URL.
func Extract(doc []byte, pageURL *url.URL) (*Preview, error) {
	var c collector
	z := html.NewTokenizer(bytes.NewReader(doc))
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("tokenizing html: %w", err)
			}
			return c.preview(pageURL), nil
		case html.StartTagToken, html.SelfClosingTagToken:
			c.inTitle = false
			c.startTag(z, tt == html.SelfClosingTagToken)
		case html.EndTagToken:
			c.inTitle = false
			c.endTag(z.Raw())
		case html.TextToken:
			if c.inTitle {
				c.inTitle = false
				if c.htmlTitle == "" {
					c.htmlTitle = cleanText(z.Text())
				}
			}
		default:
			c.inTitle = false
		}
	}
}

// collector gathers the candidates for each field during the token pass; preview picks among them.
type collector struct {
	inTitle      bool
	foreignDepth int // inside <svg> or <math>, where <title> is not the document's title

	ogTitle, twTitle, htmlTitle          string
	ogDesc, twDesc, metaDesc             string
	ogURL, canonical, base               string
	ogType, siteName, locale             string
	articleAuthor, metaAuthor, twCreator string
	icon, touchIcon, imageSrc            string
	twImage, twImageAlt                  string
	images                               []rawImage
	imagesFull                           bool
}

func (c *collector) startTag(z *html.Tokenizer, selfClosing bool) {
	raw := z.Raw()
	if len(raw) < 2 {
		return
	}
	switch raw[1] | 0x20 {
	case 'm':
		if rawTagIs(raw, "meta") {
			c.meta(z)
		} else if rawTagIs(raw, "math") && !selfClosing {
			c.foreignDepth++
		}
	case 'l':
		if rawTagIs(raw, "link") && mayBeUsefulLink(raw) {
			c.link(z)
		}
	case 'b':
		if c.base == "" && rawTagIs(raw, "base") {
			c.base = attrURL(z, "href")
		}
	case 's':
		if rawTagIs(raw, "svg") && !selfClosing {
			c.foreignDepth++
		}
	case 't':
		if c.htmlTitle == "" && c.foreignDepth == 0 && rawTagIs(raw, "title") {
			c.inTitle = true
		}
	}
}

func (c *collector) endTag(raw []byte) {
	if c.foreignDepth > 0 && (rawEndTagIs(raw, "svg") || rawEndTagIs(raw, "math")) {
		c.foreignDepth--
	}
}

// link records rel=icon, apple-touch-icon, canonical and image_src candidates.
func (c *collector) link(z *html.Tokenizer) {
	var rel, href []byte
	for more := true; more; {
		var key, val []byte
		key, val, more = z.TagAttr()
		switch string(key) {
		case "rel":
			rel = val
		case "href":
			href = val
		}
	}
	if len(rel) == 0 || len(href) == 0 {
		return
	}
	for _, tok := range bytes.Fields(lowerASCII(rel)) {
		switch string(tok) {
		case "icon":
			setURL(&c.icon, href)
		case "apple-touch-icon", "apple-touch-icon-precomposed":
			setURL(&c.touchIcon, href)
		case "canonical":
			setURL(&c.canonical, href)
		case "image_src":
			setURL(&c.imageSrc, href)
		}
	}
}

// mayBeUsefulLink cheaply rules out the stylesheet and preload links that fill real pages, before
// the attribute parse that allocates.
func mayBeUsefulLink(raw []byte) bool {
	return indexFold(raw, "icon") >= 0 || indexFold(raw, "canonical") >= 0 || indexFold(raw, "image_src") >= 0
}

// attrURL returns the named attribute of the current tag as a usable URL reference, or "".
func attrURL(z *html.Tokenizer, name string) string {
	var s string
	for more := true; more; {
		var key, val []byte
		key, val, more = z.TagAttr()
		if string(key) == name {
			setURL(&s, val)
		}
	}
	return s
}

// preview resolves the collected candidates into the Preview.
func (c *collector) preview(pageURL *url.URL) *Preview {
	r := newResolver(pageURL, c.base)
	p := &Preview{
		Title:       first(&c.ogTitle, &c.twTitle, &c.htmlTitle),
		Description: first(&c.ogDesc, &c.twDesc, &c.metaDesc),
		Type:        first(&c.ogType),
		SiteName:    first(&c.siteName),
		Locale:      first(&c.locale),
		Author:      c.author(),
		URL:         r.first(c.ogURL, c.canonical),
		Icon:        r.first(c.icon, c.touchIcon),
		Images:      c.resolveImages(r),
	}
	if p.URL == nil && r.page != nil {
		p.URL = ptr(urlString(r.page))
	}
	if p.Icon == nil && r.page != nil {
		p.Icon = resolveRef(r.page, "/favicon.ico")
	}
	if len(p.Images) > 0 {
		p.Image = &p.Images[0].URL
	}
	return p
}

func (c *collector) author() *string {
	if c.articleAuthor != "" && !looksLikeURL(c.articleAuthor) {
		return &c.articleAuthor
	}
	return first(&c.metaAuthor, &c.twCreator, &c.articleAuthor)
}

// first returns the first non-empty value, or nil. The Preview points into the collector's fields,
// which saves a copy and an allocation per field.
func first(values ...*string) *string {
	for _, v := range values {
		if *v != "" {
			return v
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
