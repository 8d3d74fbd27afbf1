package post

// Hand-written encoders for the two forms a post is written in on every write: its client JSON
// (the answer, the cache, the streams) and its gocraft/work job arguments. They produce the very
// bytes encoding/json produces (FuzzAppendJSON and FuzzAppendArgs compare them), without its
// reflection, its map sorting, or the second pass json.Marshal makes over a MarshalJSON's output.

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the client form of docs/api.md#postsvcd to b: what json.Marshal(p) returns.
// A preview that is not JSON (every producer checks it is) is written as an empty one.
func (p Post) AppendJSON(b []byte) []byte {
	if len(p.Scrap) > 0 {
		// A preview is raw JSON that encoding/json compacts and HTML-escapes; previews are rare
		// (posts with a link), so they take encoding/json's own path (MarshalJSON).
		if out, err := p.MarshalJSON(); err == nil {
			return append(b, out...)
		}
		p.Scrap = nil
	}
	b = append(b, `{"post_id":`...)
	b = strconv.AppendUint(b, p.ID, 10)
	b = append(b, `,"post_id_str":"`...)
	b = strconv.AppendUint(b, p.ID, 10)
	b = append(b, `","user_id":`...)
	b = strconv.AppendUint(b, p.UserID, 10)
	b = append(b, `,"contents":`...)
	b = AppendJSONString(b, p.Contents)
	b = append(b, `,"url":`...)
	if p.URL == "" {
		b = append(b, "null"...)
	} else {
		b = AppendJSONString(b, p.URL)
	}
	b = append(b, `,"scrap":{},"created_at":"`...)
	b = p.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// AppendArgs appends the job arguments Args returns, as JSON: what json.Marshal(p.Args()) returns
// (its keys sorted, as encoding/json sorts a map's).
func (p Post) AppendArgs(b []byte) []byte {
	b = append(b, `{"contents":`...)
	b = AppendJSONString(b, p.Contents)
	b = append(b, `,"created_at":"`...)
	b = p.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","post_id":"`...)
	b = strconv.AppendUint(b, p.ID, 10)
	b = append(b, `","scrap":`...)
	b = AppendJSONString(b, string(p.Scrap))
	b = append(b, `,"url":`...)
	b = AppendJSONString(b, p.URL)
	b = append(b, `,"user_id":"`...)
	b = strconv.AppendUint(b, p.UserID, 10)
	return append(b, `"}`...)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string exactly as encoding/json writes it: HTML-safe (<, >
// and & as \u003c, \u003e, \u0026), U+2028 and U+2029 escaped, each invalid UTF-8 byte as \ufffd.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
