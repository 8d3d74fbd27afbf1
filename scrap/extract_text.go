package scrap

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// setText sets *dst to the cleaned text unless it is already set (the first value wins).
func setText(dst *string, b []byte) {
	if *dst == "" {
		*dst = cleanText(b)
	}
}

// setURL sets *dst to the URL reference unless it is already set or is unusable (see cleanURL).
func setURL(dst *string, b []byte) {
	if *dst == "" {
		*dst = cleanURL(b)
	}
}

// isSpace is HTML's ASCII whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// lowerASCII lower-cases b in place; the tokenizer's attribute values are ours to modify.
func lowerASCII(b []byte) []byte {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// cleanText trims, collapses each run of whitespace to one space, replaces invalid UTF-8 with U+FFFD
// and cuts the result to maxTextBytes at a rune boundary.
func cleanText(b []byte) string {
	b = trimSpace(b)
	if len(b) <= maxTextBytes && isCleanText(b) {
		return string(b)
	}
	out := make([]byte, 0, min(len(b), maxTextBytes))
	space := false
	for len(b) > 0 {
		if isSpace(b[0]) {
			space, b = true, b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		chunk := b[:size]
		if r == utf8.RuneError && size == 1 {
			chunk = []byte("\uFFFD")
		}
		n := len(chunk)
		if space {
			n++
		}
		if len(out)+n > maxTextBytes {
			break
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = append(out, chunk...)
		b = b[size:]
	}
	return string(out)
}

// isCleanText reports whether trimmed b needs no change: valid UTF-8, only single spaces.
func isCleanText(b []byte) bool {
	for i, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b[i:])
		}
		if isSpace(c) && (c != ' ' || isSpace(b[i+1])) { // trimmed, so b[i+1] exists
			return false
		}
	}
	return true
}

// cleanURL returns a URL reference ready for resolution, or "" when it cannot give an http(s) URL:
// empty, too long, or absolute with another scheme (javascript:, data:, mailto:, ...). As the URL
// standard does, it strips surrounding C0 controls and spaces and removes tabs and newlines.
func cleanURL(b []byte) string {
	for len(b) > 0 && b[0] <= ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] <= ' ' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 || len(b) > maxURLBytes {
		return ""
	}
	s := string(b)
	if strings.ContainsAny(s, "\t\n\r") {
		s = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(s)
	}
	if scheme, ok := urlScheme(s); ok && scheme != "http" && scheme != "https" {
		return ""
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// urlScheme returns the lower-cased scheme of an absolute URL reference.
func urlScheme(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9', c == '+', c == '-', c == '.':
			if i == 0 {
				return "", false
			}
		case c == ':':
			return strings.ToLower(s[:i]), i > 0
		default:
			return "", false
		}
	}
	return "", false
}

func isPlainHTTP(u string) bool { return strings.HasPrefix(u, "http:") }

// looksLikeURL reports whether an author value is a profile link rather than a name.
func looksLikeURL(s string) bool {
	l := strings.ToLower(s[:min(len(s), 8)])
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") ||
		strings.HasPrefix(l, "//") || strings.HasPrefix(l, "www.")
}

// resolver turns references into absolute http(s) URLs against the document's base URL.
type resolver struct {
	page *url.URL // the final page URL; nil unless absolute http(s)
	base *url.URL // the first usable <base href> resolved against page, else page
}

func newResolver(pageURL *url.URL, baseHref string) resolver {
	var r resolver
	if pageURL != nil && isWebURL(pageURL) {
		r.page = pageURL
	}
	r.base = r.page
	if baseHref != "" {
		if b := parseRef(r.page, baseHref); b != nil {
			r.base = b
		}
	}
	return r
}

// resolve returns ref as an absolute http(s) URL, or "".
func (r resolver) resolve(ref string) string {
	if ref == "" {
		return ""
	}
	u := parseRef(r.base, ref)
	if u == nil {
		return ""
	}
	return urlString(u)
}

// first returns the first reference that resolves, or nil.
func (r resolver) first(refs ...string) *string {
	for _, ref := range refs {
		if u := r.resolve(ref); u != "" {
			return &u
		}
	}
	return nil
}

// resolveRef resolves ref against base (which must be non-nil) into an absolute http(s) URL.
func resolveRef(base *url.URL, ref string) *string {
	if u := parseRef(base, ref); u != nil {
		return ptr(urlString(u))
	}
	return nil
}

// parseRef parses ref relative to base (nil: ref must be absolute) and keeps only http(s) results.
func parseRef(base *url.URL, ref string) *url.URL {
	var u *url.URL
	var err error
	if base != nil {
		u, err = base.Parse(ref)
	} else {
		u, err = url.Parse(ref)
	}
	if err != nil || !isWebURL(u) {
		return nil
	}
	return u
}

// urlString is u.String() with bytes that are not UTF-8 percent-encoded (url.Parse keeps raw bytes in
// a query or fragment), so the URL survives JSON unchanged in meaning.
func urlString(u *url.URL) string {
	s := u.String()
	if utf8.ValidString(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			b.WriteByte('%')
			b.WriteByte(hex[s[0]>>4])
			b.WriteByte(hex[s[0]&15])
		} else {
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

func isWebURL(u *url.URL) bool {
	return (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Opaque == ""
}
