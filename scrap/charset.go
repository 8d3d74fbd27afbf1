package scrap

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/unicode"
)

// metaScanLimit bounds the <meta charset> prescan. WHATWG scans 1024 bytes and then lets the parser
// restart when it meets a later declaration; scanning further up front gets the same answer for pages
// whose declaration sits behind a long comment or inline script, without a second decode.
const metaScanLimit = 64 << 10

// Decode returns body as UTF-8. The encoding comes from, in order: a byte order mark, the
// Content-Type header's charset (so a header beats a stale <meta>), a <meta charset> or
// <meta http-equiv="Content-Type"> declaration, an XML declaration, and finally sniffing: UTF-8 when
// the body is valid UTF-8, else windows-1252 (the WHATWG default). Unknown labels are skipped, as
// WHATWG says. Invalid byte sequences become U+FFFD, so the result is always valid UTF-8.
func Decode(body []byte, contentType string) ([]byte, error) {
	enc, name, skip := detectEncoding(body, contentType)
	body = body[skip:]
	if name == "utf-8" {
		if utf8.Valid(body) {
			return body, nil
		}
		enc = unicode.UTF8 // the WHATWG decoder: U+FFFD for each invalid sequence
	}
	out, err := enc.NewDecoder().Bytes(body)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	if !utf8.Valid(out) { // the "replacement" and UTF-16 decoders can leave lone surrogates out
		out = bytes.ToValidUTF8(out, []byte("\uFFFD"))
	}
	return out, nil
}

// detectEncoding returns the body's encoding, its WHATWG name and the length of a BOM to skip.
func detectEncoding(body []byte, contentType string) (encoding.Encoding, string, int) {
	switch {
	case bytes.HasPrefix(body, []byte("\xEF\xBB\xBF")):
		return encoding.Nop, "utf-8", 3
	case bytes.HasPrefix(body, []byte("\xFE\xFF")):
		return unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), "utf-16be", 2
	case bytes.HasPrefix(body, []byte("\xFF\xFE")):
		return unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM), "utf-16le", 2
	}
	if label := headerCharset(contentType); label != "" {
		if e, name := charset.Lookup(label); e != nil {
			return e, name, 0
		}
	}
	if e, name := metaCharset(body[:min(len(body), metaScanLimit)]); e != nil {
		return e, name, 0
	}
	if e, name := xmlCharset(body); e != nil {
		return e, name, 0
	}
	if looksUTF8(body) {
		return encoding.Nop, "utf-8", 0
	}
	e, name := charset.Lookup("windows-1252")
	return e, name, 0
}

// headerCharset returns the charset parameter of a Content-Type value, also from values
// mime.ParseMediaType rejects (duplicate parameters, stray semicolons, an unterminated quote).
func headerCharset(contentType string) string {
	if _, params, err := mime.ParseMediaType(contentType); err == nil {
		return params["charset"]
	}
	i := indexFold(contentType, "charset=")
	if i < 0 {
		return ""
	}
	v := strings.TrimLeft(contentType[i+len("charset="):], " \t")
	v = strings.TrimLeft(v, `"'`)
	if end := strings.IndexAny(v, `"'; ,`); end >= 0 {
		v = v[:end]
	}
	return v
}

// metaCharset is the WHATWG prescan: the first <meta charset=X>, or <meta http-equiv=Content-Type
// content="...charset=X"> (the pragma must be present), whose label is known. UTF-16 declared in a
// <meta> means UTF-8 (the bytes were readable as ASCII), and x-user-defined means windows-1252.
func metaCharset(head []byte) (encoding.Encoding, string) {
	z := html.NewTokenizer(bytes.NewReader(head))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return nil, ""
		}
		if (tt != html.StartTagToken && tt != html.SelfClosingTagToken) || !rawTagIs(z.Raw(), "meta") {
			continue
		}
		if label := metaDeclaredLabel(z); label != "" {
			e, name := charset.Lookup(label)
			switch {
			case e == nil:
				continue
			case strings.HasPrefix(name, "utf-16"):
				e, name = encoding.Nop, "utf-8"
			case name == "x-user-defined":
				e, name = charset.Lookup("windows-1252")
			}
			return e, name
		}
	}
}

// metaDeclaredLabel returns the charset label one <meta> tag declares, or "".
func metaDeclaredLabel(z *html.Tokenizer) string {
	var label, fromContent string
	pragma := false
	for more := true; more; {
		var key, val []byte
		key, val, more = z.TagAttr()
		switch string(key) {
		case "charset":
			if label == "" {
				label = string(val)
			}
		case "http-equiv":
			pragma = pragma || strings.EqualFold(strings.TrimSpace(string(val)), "content-type")
		case "content":
			fromContent = charsetFromContent(string(val))
		}
	}
	if label != "" {
		return label
	}
	if pragma {
		return fromContent
	}
	return ""
}

// charsetFromContent extracts X from a meta content value like "text/html; charset=X"
// (WHATWG "extracting a character encoding from a meta element").
func charsetFromContent(s string) string {
	for {
		i := indexFold(s, "charset")
		if i < 0 {
			return ""
		}
		s = s[i+len("charset"):]
		rest := strings.TrimLeft(s, " \t\n\f\r")
		if !strings.HasPrefix(rest, "=") {
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t\n\f\r")
		if rest == "" {
			return ""
		}
		if q := rest[0]; q == '"' || q == '\'' {
			end := strings.IndexByte(rest[1:], q)
			if end < 0 {
				return ""
			}
			return rest[1 : 1+end]
		}
		if end := strings.IndexAny(rest, "; \t\n\f\r"); end >= 0 {
			return rest[:end]
		}
		return rest
	}
}

// indexFold is strings.Index ignoring ASCII case, for a lower-case ASCII substr. (strings.ToLower
// would change the length of a string holding invalid UTF-8, so its indexes could not be reused.)
func indexFold[T string | []byte](s T, substr string) int {
	for i := 0; i+len(substr) <= len(s); i++ {
		j := 0
		for ; j < len(substr); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != substr[j] {
				break
			}
		}
		if j == len(substr) {
			return i
		}
	}
	return -1
}

// xmlCharset reads the encoding of a leading XML declaration (<?xml version="1.0" encoding="X"?>),
// which XHTML pages use instead of <meta>.
func xmlCharset(body []byte) (encoding.Encoding, string) {
	if !bytes.HasPrefix(body, []byte("<?xml")) {
		return nil, ""
	}
	end := bytes.Index(body[:min(len(body), 1024)], []byte("?>"))
	if end < 0 {
		return nil, ""
	}
	decl := string(body[len("<?xml"):end])
	i := strings.Index(decl, "encoding")
	if i < 0 {
		return nil, ""
	}
	rest := strings.TrimLeft(decl[i+len("encoding"):], " \t\r\n")
	if !strings.HasPrefix(rest, "=") {
		return nil, ""
	}
	rest = strings.TrimLeft(rest[1:], " \t\r\n")
	if rest == "" || (rest[0] != '"' && rest[0] != '\'') {
		return nil, ""
	}
	q := rest[0]
	rest = rest[1:]
	if j := strings.IndexByte(rest, q); j >= 0 {
		e, name := charset.Lookup(rest[:j])
		if strings.HasPrefix(name, "utf-16") { // the bytes were readable as ASCII, so not UTF-16
			return encoding.Nop, "utf-8"
		}
		return e, name
	}
	return nil, ""
}

// looksUTF8 reports whether an undeclared body is UTF-8. A rune cut off at the end (by the 1 MiB read
// limit) is forgiven when the rest holds other multi-byte runes, so a lone Latin-1 byte at the end is
// not mistaken for one.
func looksUTF8(body []byte) bool {
	if utf8.Valid(body) {
		return true
	}
	for i := len(body) - 1; i >= 0 && i >= len(body)-3; i-- {
		if utf8.RuneStart(body[i]) {
			rest := body[:i]
			return !utf8.FullRune(body[i:]) && utf8.Valid(rest) && !isASCII(rest)
		}
	}
	return false
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// rawTagIs reports whether a start tag's raw bytes ("<META charset=...>") name the tag name, in any
// case, without the allocation html.Tokenizer.TagName makes.
func rawTagIs(raw []byte, name string) bool {
	return len(raw) > 1 && raw[0] == '<' && tagNameAt(raw[1:], name)
}

// rawEndTagIs is rawTagIs for an end tag ("</svg>").
func rawEndTagIs(raw []byte, name string) bool {
	return len(raw) > 2 && raw[0] == '<' && raw[1] == '/' && tagNameAt(raw[2:], name)
}

// tagNameAt reports whether b starts with the lower-case ASCII name, in any case, followed by the
// end of the tag name.
func tagNameAt(b []byte, name string) bool {
	if len(b) <= len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if b[i]|0x20 != name[i] {
			return false
		}
	}
	switch b[len(name)] {
	case ' ', '\t', '\n', '\r', '\f', '/', '>':
		return true
	}
	return false
}
