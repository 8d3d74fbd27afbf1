package queue

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/the-red/zkpost/post"
)

// The fast path of a fetched job's decoding. The generic path (json.Unmarshal into gocraft's job,
// whose arguments are a map[string]any, then decodeJob) cost writebackd 40 % of its CPU. Jobs are
// written by newJob, or rewritten by failed, in one layout, so decodeFast reads that layout
// alone, its keys and punctuation byte for byte, and takes nothing else: not a key spelled or
// ordered otherwise, not a duplicate or extra key, not whitespace, not a value the generic path
// might read otherwise.
// encoding/json matches a struct's fields case-insensitively, also under Unicode folding ("ſcrap"
// is scrap), where the map's keys are exact; a decoder into a typed struct would have had to see
// the keys anyway to agree with it. Whatever decodeFast takes, the generic path takes too and
// reads as the same post (FuzzFastDecodeAgreesWithGeneric); the rest goes the generic path.

// argKeys are the arguments post.Args writes, in the order json.Marshal writes a map's keys.
var argKeys = [...]string{"contents", "created_at", "post_id", "scrap", "url", "user_id"}

// jobArgs holds the values of argKeys, as decoded.
type jobArgs [len(argKeys)][]byte

func (a *jobArgs) arg(k string) (string, bool) {
	for i, key := range argKeys {
		if key == k {
			return string(a[i]), true
		}
	}
	return "", false
}

// decodeFast returns the post of a job in the layout newJob writes; ok is false for any other
// document, which the generic path then decides about, and for a post it would refuse.
func decodeFast(raw []byte) (p post.Post, ok bool) {
	a, ok := scanJob(raw)
	if !ok {
		return post.Post{}, false
	}
	p, err := post.FromStringArgs(a.arg)
	if err != nil || p.ID == 0 || p.UserID == 0 {
		return post.Post{}, false
	}
	return p, true
}

// scanJob reads the arguments of a job written as json.Marshal writes gocraft's job: by newJob,
// or by failed, which adds fails, err and failed_at.
func scanJob(raw []byte) (a jobArgs, ok bool) {
	s := scanner{b: raw, ok: true}
	s.lit(`{"name":"persist_post","id":`)
	s.str()
	s.lit(`,"t":`)
	s.int()
	s.lit(`,"args":{`)
	for i, k := range argKeys {
		if i > 0 {
			s.lit(`,`)
		}
		s.lit(`"`)
		s.lit(k)
		s.lit(`":`)
		a[i] = s.str()
	}
	s.lit(`}`)
	if s.opt(`,"fails":`) {
		s.int()
	}
	if s.opt(`,"err":`) {
		s.str()
	}
	if s.opt(`,"failed_at":`) {
		s.int()
	}
	s.lit(`}`)
	return a, s.ok && len(s.b) == 0
}

// scanner reads a JSON document from the front of b; ok turns false at the first byte it does
// not take, and stays so.
type scanner struct {
	b  []byte
	ok bool
}

// lit takes the literal l.
func (s *scanner) lit(l string) {
	if !s.opt(l) {
		s.ok = false
	}
}

// opt takes the literal l if b starts with it.
func (s *scanner) opt(l string) bool {
	if !s.ok || len(s.b) < len(l) || string(s.b[:len(l)]) != l {
		return false
	}
	s.b = s.b[len(l):]
	return true
}

// int takes a JSON integer that fits an int64 (gocraft's t, fails and failed_at); it refuses
// signs, fractions and exponents.
func (s *scanner) int() {
	n := 0
	for n < len(s.b) && n < 20 && '0' <= s.b[n] && s.b[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && s.b[0] == '0' {
		s.ok = false
		return
	}
	if _, err := strconv.ParseInt(string(s.b[:n]), 10, 64); err != nil {
		s.ok = false
		return
	}
	s.b = s.b[n:]
}

// str takes a JSON string and returns its value, which shares b when the string has no escape.
// It refuses what encoding/json would not decode byte for byte: invalid UTF-8 and escaped UTF-16
// surrogates, which it replaces with U+FFFD (newJob writes neither).
func (s *scanner) str() []byte {
	if !s.ok || len(s.b) == 0 || s.b[0] != '"' {
		s.ok = false
		return nil
	}
	end, escaped := 1, false
	for ; end < len(s.b) && s.b[end] != '"'; end++ {
		switch c := s.b[end]; {
		case c < 0x20:
			s.ok = false
			return nil
		case c == '\\':
			escaped = true
			end++ // the escaped byte, which may be a quote
		}
	}
	if end >= len(s.b) || !utf8.Valid(s.b[1:end]) {
		s.ok = false
		return nil
	}
	q := s.b[1:end]
	s.b = s.b[end+1:]
	if !escaped {
		return q
	}
	val := make([]byte, 0, len(q)) // an escape is never shorter than what it stands for
	for i := 0; i < len(q); {
		j := bytes.IndexByte(q[i:], '\\')
		if j < 0 {
			return append(val, q[i:]...)
		}
		r, n := unescape(q[i+j:])
		if n == 0 {
			s.ok = false
			return nil
		}
		val = utf8.AppendRune(append(val, q[i:i+j]...), r)
		i += j + n
	}
	return val
}

// unescape decodes the JSON escape b starts with and returns its length, 0 if it is none or an
// escaped surrogate.
func unescape(b []byte) (rune, int) {
	if len(b) < 2 {
		return 0, 0
	}
	switch b[1] {
	case '"', '\\', '/':
		return rune(b[1]), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		if len(b) < 6 {
			return 0, 0
		}
		r, err := strconv.ParseUint(string(b[2:6]), 16, 16)
		if err != nil || utf16.IsSurrogate(rune(r)) {
			return 0, 0
		}
		return rune(r), 6
	}
	return 0, 0
}
