package scrap

import (
	"golang.org/x/net/html"
)

// maxRawImages bounds the og:image entries kept during the pass (before deduplication and before
// unusable URLs are dropped), so a page of a million og:image tags costs no memory.
const maxRawImages = 4 * maxImages

// rawImage is one og:image as written, before its URL is resolved.
type rawImage struct {
	url, secureURL string
	fromOGImage    bool // started by og:image, so one following og:image:url is its alias
	aliasSeen      bool
	width, height  int // -1: absent
	alt            string
}

// meta applies one <meta> tag. A tag with both property= and name= counts under each
// (<meta name="description" property="og:description"> is common).
func (c *collector) meta(z *html.Tokenizer) {
	var property, name, content []byte
	for more := true; more; {
		var key, val []byte
		key, val, more = z.TagAttr()
		switch string(key) {
		case "property":
			property = val
		case "name":
			name = val
		case "content":
			content = val
		}
	}
	content = trimSpace(content)
	if len(content) == 0 {
		return
	}
	property = lowerASCII(trimSpace(property))
	name = lowerASCII(trimSpace(name))
	if len(property) > 0 {
		c.property(property, content)
	}
	if len(name) > 0 && string(name) != string(property) {
		c.property(name, content)
	}
}

// property applies one lower-cased property (or name) with its trimmed, non-empty content.
func (c *collector) property(key, content []byte) {
	switch string(key) {
	case "og:title":
		setText(&c.ogTitle, content)
	case "twitter:title":
		setText(&c.twTitle, content)
	case "og:description":
		setText(&c.ogDesc, content)
	case "twitter:description":
		setText(&c.twDesc, content)
	case "description":
		setText(&c.metaDesc, content)
	case "og:url":
		setURL(&c.ogURL, content)
	case "og:type":
		setText(&c.ogType, content)
	case "og:site_name":
		setText(&c.siteName, content)
	case "og:locale":
		setText(&c.locale, content)
	case "article:author":
		setText(&c.articleAuthor, content)
	case "author":
		setText(&c.metaAuthor, content)
	case "twitter:creator":
		setText(&c.twCreator, content)
	case "twitter:image", "twitter:image:src":
		setURL(&c.twImage, content)
	case "twitter:image:alt":
		setText(&c.twImageAlt, content)
	case "og:image":
		c.addImage(content, true)
	case "og:image:url":
		c.imageURL(content)
	case "og:image:secure_url":
		c.imageSecureURL(content)
	case "og:image:width":
		if img := c.current(); img != nil && img.width < 0 {
			img.width = parseDimension(content)
		}
	case "og:image:height":
		if img := c.current(); img != nil && img.height < 0 {
			img.height = parseDimension(content)
		}
	case "og:image:alt":
		if img := c.current(); img != nil {
			setText(&img.alt, content)
		}
	}
}

// addImage starts a new og:image. Past maxRawImages the image is not kept, and structured properties
// that follow it attach to nothing rather than to an earlier image.
func (c *collector) addImage(content []byte, fromOGImage bool) {
	if len(c.images) >= maxRawImages {
		c.imagesFull = true
		return
	}
	img := rawImage{fromOGImage: fromOGImage, aliasSeen: !fromOGImage, width: -1, height: -1}
	setURL(&img.url, content)
	c.images = append(c.images, img)
}

// current is the og:image that structured properties attach to, or nil.
func (c *collector) current() *rawImage {
	if c.imagesFull || len(c.images) == 0 {
		return nil
	}
	return &c.images[len(c.images)-1]
}

// imageURL handles og:image:url: the same as og:image, and usually written right after it with the
// same value, so the first og:image:url after an og:image names that image rather than a new one.
func (c *collector) imageURL(content []byte) {
	img := c.current()
	if img == nil || !img.fromOGImage || img.aliasSeen {
		c.addImage(content, false)
		return
	}
	img.aliasSeen = true
	setURL(&img.url, content)
}

// imageSecureURL handles og:image:secure_url, which may also stand alone before any og:image.
func (c *collector) imageSecureURL(content []byte) {
	if len(c.images) == 0 && !c.imagesFull {
		c.addImage(nil, false)
	}
	if img := c.current(); img != nil {
		setURL(&img.secureURL, content)
	}
}

// parseDimension reads a pixel count: digits, optionally followed by "px" or a fraction
// ("1200", "1200px", "1200.0"); anything else is absent (-1).
func parseDimension(b []byte) int {
	n, i := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n > 1_000_000 {
			return -1
		}
		n = n*10 + int(b[i]-'0')
	}
	if i == 0 {
		return -1
	}
	rest := b[i:]
	switch {
	case len(rest) == 0, string(lowerASCII(rest)) == "px":
		return n
	case rest[0] == '.':
		for _, d := range rest[1:] {
			if d < '0' || d > '9' {
				return -1
			}
		}
		return n
	}
	return -1
}

// resolveImages returns the usable images, deduplicated, in page order, falling back to
// twitter:image and then <link rel=image_src>. Never nil.
func (c *collector) resolveImages(r resolver) []Image {
	out := make([]Image, 0, min(len(c.images)+1, maxImages))
	for i := range c.images {
		img := &c.images[i]
		u := r.resolve(img.url)
		if sec := r.resolve(img.secureURL); sec != "" && (u == "" || isPlainHTTP(u) && !isPlainHTTP(sec)) {
			u = sec
		}
		if u == "" || hasImage(out, u) {
			continue
		}
		im := Image{URL: u}
		if img.width >= 0 {
			im.Width = ptr(img.width)
		}
		if img.height >= 0 {
			im.Height = ptr(img.height)
		}
		if img.alt != "" {
			im.Alt = &img.alt
		}
		if out = append(out, im); len(out) == maxImages {
			break
		}
	}
	if len(out) > 0 {
		return out
	}
	if u := r.resolve(c.twImage); u != "" {
		return append(out, Image{URL: u, Alt: first(&c.twImageAlt)})
	}
	if u := r.resolve(c.imageSrc); u != "" {
		return append(out, Image{URL: u})
	}
	return out
}

func hasImage(images []Image, u string) bool {
	for i := range images {
		if images[i].URL == u {
			return true
		}
	}
	return false
}
