package postsvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
)

// writeInput is a validated write request.
type writeInput struct {
	UserID   uint64
	Contents string
	URL      string // "" when the post has no link
}

// inputRules are the bounds every write is checked against.
type inputRules struct {
	maxContents int
	maxBody     int
}

// parseCreateBody reads the JSON body of POST /api/v1/posts. Unknown fields are rejected, so a
// typo such as "content" fails loudly instead of writing a post without its text; user_id may be a
// JSON number or a decimal string (for JavaScript clients, as post_id_str exists for them).
func (r inputRules) parseCreateBody(body []byte) (writeInput, error) {
	if len(body) > r.maxBody {
		return writeInput{}, httpapi.InvalidArgument(fmt.Sprintf("body exceeds %d bytes", r.maxBody))
	}
	if !utf8.Valid(body) {
		return writeInput{}, httpapi.InvalidArgument("body is not valid UTF-8")
	}
	if err := checkJSONEscapes(body); err != nil {
		return writeInput{}, err
	}
	in, ok := scanCreateBody(body)
	if !ok {
		var err error
		if in, err = decodeCreateBody(body); err != nil {
			return writeInput{}, err
		}
	}
	uid, err := userIDFromJSON(in.UserID)
	if err != nil {
		return writeInput{}, err
	}
	w := writeInput{UserID: uid}
	if in.Contents != nil {
		w.Contents = *in.Contents
	}
	if in.URL != nil {
		w.URL = *in.URL
	}
	return w, r.check(w)
}

// createFields are the fields of a create body as sent: a field that was absent is nil.
type createFields struct {
	UserID   json.RawMessage `json:"user_id"`
	Contents *string         `json:"contents"`
	URL      *string         `json:"url"`
}

// decodeCreateBody reads a create body with encoding/json: exactly one object, no unknown field.
func decodeCreateBody(body []byte) (createFields, error) {
	var in createFields
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, httpapi.InvalidArgument("body must be a JSON object with user_id, contents and optionally url: " + jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return in, httpapi.InvalidArgument("body has data after the JSON object")
	}
	return in, nil
}

// scanCreateBody reads the usual spelling of a create body without reflection: one object whose
// keys are user_id, contents and url, each at most once and spelled exactly so, with string
// values free of escapes and control characters, and a user_id of digits, quoted or not. It
// reads what encoding/json would (FuzzScanCreateBody); anything else is not ok, and
// decodeCreateBody reads it or explains what is wrong. The body must be valid UTF-8.
func scanCreateBody(body []byte) (createFields, bool) {
	var in createFields
	b, ok := cutJSONByte(body, '{')
	for ok {
		var key []byte
		if key, b, ok = cutJSONString(b); !ok {
			break
		}
		if b, ok = cutJSONByte(b, ':'); !ok {
			break
		}
		switch string(key) {
		case "user_id":
			if in.UserID != nil {
				return in, false
			}
			b = bytes.TrimLeft(b, jsonSpace)
			var rest []byte
			if _, rest, ok = cutJSONString(b); !ok {
				_, rest, ok = cutJSONDigits(b)
			}
			in.UserID, b = b[:len(b)-len(rest)], rest // the value as sent, as json.RawMessage holds it
		case "contents", "url":
			var val []byte
			if val, b, ok = cutJSONString(b); !ok {
				return in, false
			}
			v, field := string(val), &in.Contents
			if key[0] == 'u' {
				field = &in.URL
			}
			if *field != nil {
				return in, false
			}
			*field = &v
		default:
			return in, false
		}
		if !ok {
			break
		}
		if rest, more := cutJSONByte(b, ','); more {
			b = rest
			continue
		}
		b, ok = cutJSONByte(b, '}')
		return in, ok && len(bytes.TrimLeft(b, jsonSpace)) == 0
	}
	return in, false
}

const jsonSpace = " \t\r\n"

// cutJSONByte cuts c, after any white space, from the start of b.
func cutJSONByte(b []byte, c byte) ([]byte, bool) {
	b = bytes.TrimLeft(b, jsonSpace)
	if len(b) == 0 || b[0] != c {
		return b, false
	}
	return b[1:], true
}

// cutJSONString cuts a string without escapes or control characters, after any white space,
// from the start of b, and returns its contents.
func cutJSONString(b []byte) (s, rest []byte, ok bool) {
	if b, ok = cutJSONByte(b, '"'); !ok {
		return nil, b, false
	}
	for i, c := range b {
		switch {
		case c == '"':
			return b[:i], b[i+1:], true
		case c == '\\' || c < 0x20:
			return nil, b, false
		}
	}
	return nil, b, false
}

// cutJSONDigits cuts a JSON number that is digits alone (no sign, fraction or exponent, no
// leading zero), after any white space, from the start of b.
func cutJSONDigits(b []byte) (digits, rest []byte, ok bool) {
	b = bytes.TrimLeft(b, jsonSpace)
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 || b[0] == '0' || (n < len(b) && (b[n] == '.' || b[n] == 'e' || b[n] == 'E')) {
		return nil, b, false
	}
	return b[:n], b[n:], true
}

// checkJSONEscapes refuses a \u escape of a UTF-16 surrogate that is not half of a high-low pair
// ("\ud800", "\udc00", "\udc00\ud800"). encoding/json would decode each into U+FFFD, storing
// text the client never sent; raw bytes are already proven valid UTF-8, which has no surrogates.
func checkJSONEscapes(body []byte) error {
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			inString = !inString
		case c != '\\' || !inString:
		case i+1 < len(body) && body[i+1] == 'u':
			n, err := surrogateEscape(body[i:])
			if err != nil {
				return err
			}
			i += n - 1
		default:
			i++ // a one-character escape: \" must not end the string
		}
	}
	return nil
}

// surrogateEscape checks the \u escape at the start of b and returns how many bytes it and, for
// a high surrogate, its low half take. A malformed escape is left to the JSON decoder.
func surrogateEscape(b []byte) (int, error) {
	r, ok := hex4(b)
	switch {
	case !ok || !utf16.IsSurrogate(r):
		return 2, nil
	case r >= 0xdc00:
		return 0, httpapi.InvalidArgument("JSON string has a low surrogate escape (\\udc00-\\udfff) without a high one before it")
	}
	if low, ok := hex4(b[6:]); ok && low >= 0xdc00 && low <= 0xdfff {
		return 12, nil
	}
	return 0, httpapi.InvalidArgument("JSON string has a high surrogate escape (\\ud800-\\udbff) without a low one after it")
}

// hex4 reads `\uXXXX` at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[2:6]), 16, 16)
	return rune(v), err == nil
}

// jsonProblem describes a decoding error without echoing the client's bytes back.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of body"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed JSON"
}

func userIDFromJSON(raw json.RawMessage) (uint64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return 0, httpapi.InvalidArgument("user_id is required")
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, httpapi.InvalidArgument("user_id must be a positive integer")
		}
	}
	return parseUserID(s)
}

// parseUserID accepts a decimal integer in 1..2^64-1: no sign, no exponent, no spaces.
func parseUserID(s string) (uint64, error) {
	id, ok := parsePositive(s)
	if !ok {
		return 0, httpapi.InvalidArgument("user_id must be an integer from 1 to 18446744073709551615")
	}
	return id, nil
}

// parsePositive parses a decimal uint64 > 0 written with digits only.
func parsePositive(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v > 0
}

// parseWriteQuery reads GET /api/v1/write_post/<uid>?contents=…&url=… (the reference's form).
func (r inputRules) parseWriteQuery(uidText string, contents, rawURL []byte) (writeInput, error) {
	uid, err := parseUserID(uidText)
	if err != nil {
		return writeInput{}, err
	}
	w := writeInput{UserID: uid, Contents: string(contents), URL: string(rawURL)}
	return w, r.check(w)
}

// check applies the rules every write shares, whatever form it came in.
func (r inputRules) check(w writeInput) error {
	if w.UserID == 0 {
		return httpapi.InvalidArgument("user_id must be positive")
	}
	if !utf8.ValidString(w.Contents) {
		return httpapi.InvalidArgument("contents must be valid UTF-8")
	}
	if strings.TrimSpace(w.Contents) == "" {
		return httpapi.InvalidArgument("contents must not be empty")
	}
	if len(w.Contents) > r.maxContents {
		return httpapi.InvalidArgument(fmt.Sprintf("contents exceed %d bytes", r.maxContents))
	}
	return checkURL(w.URL)
}

// checkURL accepts "" (no link) or an absolute http(s) URL of at most MaxURLBytes with a host,
// no credentials, and no character that is invisible or reorders text (see hiddenRune): what a
// page shows of a link must be where it leads.
func checkURL(raw string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > MaxURLBytes {
		return httpapi.InvalidArgument(fmt.Sprintf("url exceeds %d bytes", MaxURLBytes))
	}
	if !utf8.ValidString(raw) {
		return httpapi.InvalidArgument("url must be valid UTF-8")
	}
	for _, c := range raw {
		if hiddenRune(c) {
			return httpapi.InvalidArgument(fmt.Sprintf("url must not contain spaces, control, format or invisible characters (found U+%04X)", c))
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return httpapi.InvalidArgument("url is not a valid URL")
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return httpapi.InvalidArgument("url must be an absolute http or https URL")
	}
	if u.Hostname() == "" {
		return httpapi.InvalidArgument("url must have a host")
	}
	if u.User != nil {
		return httpapi.InvalidArgument("url must not carry credentials")
	}
	return nil
}

// hiddenRune reports a character that shows as nothing, as blank, or changes how the text around
// it is shown: every control (Cc), format (Cf: bidi embeddings, overrides and isolates, zero-width
// space and joiners, soft hyphen, word joiner, BOM, tags), separator (Z: spaces of every width,
// line and paragraph separators) and private-use (Co) character, variation selectors and the other
// default-ignorable code points (Hangul fillers, combining grapheme joiner, Mongolian selectors),
// and the blank Braille pattern U+2800. A percent-encoded form of any of them is harmless: it is
// shown as the escape it is.
func hiddenRune(c rune) bool {
	return c == '\u2800' || unicode.In(c, unicode.Cc, unicode.Cf, unicode.Z, unicode.Co,
		unicode.Bidi_Control, unicode.Join_Control, unicode.Variation_Selector,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Noncharacter_Code_Point)
}

// listArgs reads the f and limit query parameters of a timeline request; an empty or repeated one
// is refused rather than taken as absent.
func listArgs(uidText string, args *fasthttp.Args) (listQuery, error) {
	f, err := httpapi.QueryParam(args, "f")
	if err != nil {
		return listQuery{}, err
	}
	limit, err := httpapi.QueryParam(args, "limit")
	if err != nil {
		return listQuery{}, err
	}
	return parseListQuery(uidText, f, limit)
}

// writeArgs reads the reference's GET form of a write; contents and url follow the same rule as
// every query parameter: absent, or given once and not empty.
func (r inputRules) writeArgs(uidText string, args *fasthttp.Args) (writeInput, error) {
	contents, err := httpapi.QueryParam(args, "contents")
	if err != nil {
		return writeInput{}, err
	}
	u, err := httpapi.QueryParam(args, "url")
	if err != nil {
		return writeInput{}, err
	}
	return r.parseWriteQuery(uidText, contents, u)
}

// listQuery is a validated timeline page request.
type listQuery struct {
	UserID uint64
	MaxID  uint64 // f: newest id wanted; 0 = no bound
	Limit  int
}

// parseListQuery reads GET /api/v1/posts/<uid>?f=<post_id>&limit=<1-100>.
func parseListQuery(uidText string, f, limit []byte) (listQuery, error) {
	uid, err := parseUserID(uidText)
	if err != nil {
		return listQuery{}, err
	}
	q := listQuery{UserID: uid, Limit: DefaultLimit}
	if len(f) > 0 {
		v, ok := parsePositive(string(f))
		if !ok {
			return listQuery{}, httpapi.InvalidArgument("f must be a post id (a positive integer)")
		}
		q.MaxID = v
	}
	if len(limit) > 0 {
		v, ok := parsePositive(string(limit))
		if !ok || v > MaxLimit {
			return listQuery{}, httpapi.InvalidArgument(fmt.Sprintf("limit must be from 1 to %d", MaxLimit))
		}
		q.Limit = int(v)
	}
	return q, nil
}

// parsePostID reads the <post_id> path segment.
func parsePostID(s string) (uint64, error) {
	id, ok := parsePositive(s)
	if !ok {
		return 0, httpapi.InvalidArgument("post_id must be an integer from 1 to 18446744073709551615")
	}
	return id, nil
}
