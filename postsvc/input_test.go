package postsvc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
)

var testRules = inputRules{maxContents: 100, maxBody: 100*jsonEscapeRatio + MaxURLBytes*jsonEscapeRatio + bodySlackBytes}

func TestParseCreateBody(t *testing.T) {
	long := strings.Repeat("a", 101)
	tests := []struct {
		name, body string
		want       writeInput
		ok         bool
	}{
		{"minimal", `{"user_id":42,"contents":"hi"}`, writeInput{UserID: 42, Contents: "hi"}, true},
		{"with url", `{"user_id":42,"contents":"hi","url":"https://example.com/a?b=1"}`, writeInput{42, "hi", "https://example.com/a?b=1"}, true},
		{"string uid", `{"user_id":"18446744073709551615","contents":"x"}`, writeInput{UserID: 18446744073709551615, Contents: "x"}, true},
		{"null url", `{"user_id":1,"contents":"x","url":null}`, writeInput{UserID: 1, Contents: "x"}, true},
		{"uid zero", `{"user_id":0,"contents":"x"}`, writeInput{}, false},
		{"uid negative", `{"user_id":-1,"contents":"x"}`, writeInput{}, false},
		{"uid overflow", `{"user_id":18446744073709551616,"contents":"x"}`, writeInput{}, false},
		{"uid float", `{"user_id":1.5,"contents":"x"}`, writeInput{}, false},
		{"uid exponent", `{"user_id":1e3,"contents":"x"}`, writeInput{}, false},
		{"uid missing", `{"contents":"x"}`, writeInput{}, false},
		{"uid bool", `{"user_id":true,"contents":"x"}`, writeInput{}, false},
		{"contents missing", `{"user_id":1}`, writeInput{}, false},
		{"contents blank", `{"user_id":1,"contents":" \n\t"}`, writeInput{}, false},
		{"contents too long", `{"user_id":1,"contents":"` + long + `"}`, writeInput{}, false},
		{"contents number", `{"user_id":1,"contents":5}`, writeInput{}, false},
		{"unknown field", `{"user_id":1,"contents":"x","content":"y"}`, writeInput{}, false},
		{"trailing data", `{"user_id":1,"contents":"x"} {}`, writeInput{}, false},
		{"array", `[1]`, writeInput{}, false},
		{"empty", ``, writeInput{}, false},
		{"invalid utf8", "{\"user_id\":1,\"contents\":\"\xff\"}", writeInput{}, false},
		{"ftp url", `{"user_id":1,"contents":"x","url":"ftp://example.com/"}`, writeInput{}, false},
		{"javascript url", `{"user_id":1,"contents":"x","url":"javascript:alert(1)"}`, writeInput{}, false},
		{"relative url", `{"user_id":1,"contents":"x","url":"/a/b"}`, writeInput{}, false},
		{"url with space", `{"user_id":1,"contents":"x","url":"https://example.com/a b"}`, writeInput{}, false},
		{"url with newline", `{"user_id":1,"contents":"x","url":"https://example.com/\n"}`, writeInput{}, false},
		{"url credentials", `{"user_id":1,"contents":"x","url":"https://u:p@example.com/"}`, writeInput{}, false},
		{"url too long", `{"user_id":1,"contents":"x","url":"https://example.com/` + strings.Repeat("a", 2048) + `"}`, writeInput{}, false},
		{"url no host", `{"user_id":1,"contents":"x","url":"https:///path"}`, writeInput{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testRules.parseCreateBody([]byte(tc.body))
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("got %+v, %v; want a 400 envelope error", got, err)
			}
		})
	}
}

func TestParseListQuery(t *testing.T) {
	tests := []struct {
		uid, f, limit string
		want          listQuery
		ok            bool
	}{
		{"42", "", "", listQuery{UserID: 42, Limit: 10}, true},
		{"42", "9007199254740993", "100", listQuery{42, 9007199254740993, 100}, true},
		{"42", "", "0", listQuery{}, false},
		{"42", "", "101", listQuery{}, false},
		{"42", "", "-1", listQuery{}, false},
		{"42", "0", "", listQuery{}, false},
		{"42", "x", "", listQuery{}, false},
		{"42", "18446744073709551616", "", listQuery{}, false},
		{"0", "", "", listQuery{}, false},
		{"-5", "", "", listQuery{}, false},
		{"+5", "", "", listQuery{}, false},
		{"abc", "", "", listQuery{}, false},
	}
	for _, tc := range tests {
		got, err := parseListQuery(tc.uid, []byte(tc.f), []byte(tc.limit))
		if tc.ok != (err == nil) || (tc.ok && got != tc.want) {
			t.Errorf("parseListQuery(%q, %q, %q) = %+v, %v; want %+v ok=%v", tc.uid, tc.f, tc.limit, got, err, tc.want, tc.ok)
		}
	}
}

// checkWriteInvariants fails when an accepted write breaks a rule the service relies on.
func checkWriteInvariants(t *testing.T, w writeInput, err error) {
	t.Helper()
	if err != nil {
		var e *httpapi.Error
		if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 {
			t.Fatalf("rejection is not a 4xx envelope error: %v", err)
		}
		return
	}
	if w.UserID == 0 || !utf8.ValidString(w.Contents) || strings.TrimSpace(w.Contents) == "" ||
		len(w.Contents) > testRules.maxContents || len(w.URL) > MaxURLBytes || checkURL(w.URL) != nil {
		t.Fatalf("accepted invalid input %+v", w)
	}
}

func FuzzCreatePost(f *testing.F) {
	for _, s := range []string{`{"user_id":42,"contents":"hi","url":"https://example.com/"}`,
		`{"user_id":"7","contents":"x"}`, `{"user_id":-1}`, `{"user_id":1e400,"contents":"x"}`, `null`, `{}`,
		"{\"user_id\":1,\"contents\":\"\\u0000\",\"url\":\"http://[::1]:80/\"}",
		`{"user_id":1,"contents":"\ud83d\ude00 \\ud800 \udc00"}`, `{"user_id":1,"contents":"x","url":"https://a.example/\u202e"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := testRules.parseCreateBody(body)
		checkWriteInvariants(t, w, err)
		if err == nil && strings.ContainsRune(w.Contents, utf8.RuneError) && !strings.Contains(string(body), "\uFFFD") &&
			!strings.Contains(strings.ToLower(string(body)), `\ufffd`) {
			t.Fatalf("accepted %q as contents %q: a U+FFFD the client did not send", body, w.Contents)
		}
		if err == nil {
			// Whatever was accepted must survive the post JSON round trip.
			b, _ := json.Marshal(w.Contents)
			var back string
			if json.Unmarshal(b, &back) != nil || back != w.Contents {
				t.Fatalf("contents %q do not round-trip", w.Contents)
			}
		}
	})
}

// FuzzScanCreateBody checks the create body's scanner against encoding/json: whatever it reads,
// decodeCreateBody reads the same.
func FuzzScanCreateBody(f *testing.F) {
	for _, s := range []string{`{"user_id":42,"contents":"hi","url":"https://example.com/"}`,
		` { "url" : "u" , "contents":"x", "user_id" : "7" } ` + "\n", `{"user_id":01,"contents":"x"}`,
		`{"user_id":1e3,"contents":"x"}`, `{"user_id":-1,"contents":"x"}`, `{"user_id":1,"user_id":2}`,
		`{"User_ID":1,"contents":"x"}`, `{"user_id":1,"contents":"a\"b"}`, `{"user_id":1,"contents":null}`,
		`{"user_id":1,"contents":"x"} {}`, `{"user_id":1,}`, `{}`, "{\"user_id\":1,\"contents\":\"\t\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) { // parseCreateBody refuses it before either reads it
			return
		}
		got, ok := scanCreateBody(body)
		if !ok {
			return
		}
		want, err := decodeCreateBody(body)
		if err != nil {
			t.Fatalf("scanCreateBody read %q, encoding/json refuses it: %v", body, err)
		}
		if string(got.UserID) != string(want.UserID) || !samePtr(got.Contents, want.Contents) || !samePtr(got.URL, want.URL) {
			t.Fatalf("scanCreateBody(%q) = %s %v %v; encoding/json reads %s %v %v", body,
				got.UserID, deref(got.Contents), deref(got.URL), want.UserID, deref(want.Contents), deref(want.URL))
		}
	})
}

func TestScanCreateBodyReadsTheUsualSpelling(t *testing.T) {
	for _, body := range []string{`{"user_id":42,"contents":"bench post 7"}`,
		`{"user_id":"42","contents":"hi","url":"https://example.com/"}`, ` {"contents": "hi", "user_id": 42}` + "\n"} {
		in, ok := scanCreateBody([]byte(body))
		if !ok || deref(in.Contents) != "hi" && deref(in.Contents) != "bench post 7" {
			t.Fatalf("scanCreateBody(%q) = %+v, %v", body, in, ok)
		}
	}
	// Escapes go to encoding/json, and are decoded all the same.
	w, err := testRules.parseCreateBody([]byte(`{"user_id":1,"contents":"a\u0041\"b"}`))
	if err != nil || w.Contents != `aA"b` {
		t.Fatalf("parseCreateBody with escapes = %+v, %v", w, err)
	}
}

func samePtr(a, b *string) bool { return (a == nil) == (b == nil) && deref(a) == deref(b) }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func FuzzWritePostQuery(f *testing.F) {
	f.Add("42", []byte("hello"), []byte("https://example.com/"))
	f.Add("0", []byte(""), []byte("javascript:alert(1)"))
	f.Add("18446744073709551615", []byte("\xff"), []byte("http://a/\x00"))
	f.Fuzz(func(t *testing.T, uid string, contents, u []byte) {
		w, err := testRules.parseWriteQuery(uid, contents, u)
		checkWriteInvariants(t, w, err)
	})
}

func FuzzListQuery(f *testing.F) {
	f.Add("42", []byte(""), []byte(""))
	f.Add("1", []byte("9007199254740993"), []byte("100"))
	f.Add("-1", []byte("0"), []byte("1000"))
	f.Fuzz(func(t *testing.T, uid string, fv, limit []byte) {
		q, err := parseListQuery(uid, fv, limit)
		if err != nil {
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("rejection is not a 400 envelope error: %v", err)
			}
			return
		}
		if q.UserID == 0 || q.Limit < 1 || q.Limit > MaxLimit || (len(fv) > 0 && q.MaxID == 0) {
			t.Fatalf("accepted invalid query %+v", q)
		}
	})
}

// TestSurrogateEscapes covers the class: every unpaired or reversed surrogate escape is refused
// wherever it stands in a string, and every well-formed pair (and escapes that only look alike) is
// accepted with the text it encodes.
func TestSurrogateEscapes(t *testing.T) {
	body := func(contents string) []byte { return []byte(`{"user_id":1,"contents":"` + contents + `"}`) }
	for _, tc := range []struct {
		name, contents string
	}{
		{"lone high", `\ud800`},
		{"lone high, last", `\udbff`},
		{"lone low", `\udc00`},
		{"lone low, last", `\udfff`},
		{"reversed pair", `\udc00\ud800`},
		{"high then text", `a\ud83dx`},
		{"high then BMP escape", `\ud83d\u0041`},
		{"high then high", `\ud83d\ud83d`},
		{"high at end", `x\uD800`},
		{"high then bad escape", `\ud800\u12`},
		{"after escaped quote", `\"\ud800`},
		{"after escaped backslash", `\\\ud800`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testRules.parseCreateBody(body(tc.contents))
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("contents %s: got %v, want 400", tc.contents, err)
			}
		})
	}
	for _, tc := range []struct{ contents, want string }{
		{`\ud83d\ude00`, "😀"},
		{`\uD83D\uDE00 and \udbff\udfff`, "😀 and \U0010ffff"},
		{`\\ud800`, `\ud800`},       // an escaped backslash, then plain text
		{`\u00e9\ufffd`, "é\ufffd"}, // U+FFFD sent on purpose stays
		{`\u20ac`, "€"},
	} {
		got, err := testRules.parseCreateBody(body(tc.contents))
		if err != nil || got.Contents != tc.want {
			t.Errorf("contents %s: got %q, %v; want %q", tc.contents, got.Contents, err, tc.want)
		}
	}
	// The same rule holds in every string of the body, not just contents.
	for _, b := range []string{`{"user_id":"\ud800","contents":"x"}`, `{"user_id":1,"contents":"x","url":"https://a.example/\udfff"}`,
		`{"user_id":1,"contents":"x","\ud800":1}`} {
		if _, err := testRules.parseCreateBody([]byte(b)); err == nil {
			t.Errorf("%s accepted", b)
		}
	}
}

// TestURLHiddenCharacters walks every code point of the refused classes: each one, raw anywhere
// in a URL, is refused; percent-encoded, it is accepted (a page shows it as the escape).
func TestURLHiddenCharacters(t *testing.T) {
	tables := map[string]*unicode.RangeTable{"Cc": unicode.Cc, "Cf": unicode.Cf, "Z": unicode.Z,
		"Bidi_Control": unicode.Bidi_Control, "Join_Control": unicode.Join_Control,
		"Variation_Selector": unicode.Variation_Selector, "Other_Default_Ignorable": unicode.Other_Default_Ignorable_Code_Point}
	checked := 0
	for name, tab := range tables {
		for r := rune(0); r <= unicode.MaxRune; r++ {
			if !unicode.Is(tab, r) || (r >= 0xd800 && r <= 0xdfff) {
				continue
			}
			checked++
			for _, u := range []string{"https://example.com/a" + string(r) + "b", "https://exa" + string(r) + "mple.com/",
				"https://example.com/?q=" + string(r), "https://example.com/#" + string(r)} {
				if checkURL(u) == nil {
					t.Fatalf("%s U+%04X accepted in %q", name, r, u)
				}
			}
		}
	}
	if checked < 300 {
		t.Fatalf("checked only %d code points", checked)
	}
	for _, r := range []rune{'\u202e', '\u200b', '\ufeff', '\u00ad', '\u3164', '\u2800', '\ue000', '\u034f', '\U000e0041', '\u00a0', '\u3000'} {
		if checkURL("https://example.com/"+string(r)) == nil {
			t.Errorf("U+%04X accepted", r)
		}
	}
	for _, u := range []string{"https://example.com/%E2%80%AE", "https://example.com/caf\u00e9", "https://例え.jp/パス",
		"https://example.com/\u05d0\u05d1" /* Hebrew letters: bidi by nature, but visible */, "https://example.com/😀"} {
		if err := checkURL(u); err != nil {
			t.Errorf("%q refused: %v", u, err)
		}
	}
}

// TestQueryParams: an empty or repeated parameter is refused on every query route, whatever the
// parameter; absent ones keep their defaults.
func TestQueryParams(t *testing.T) {
	for _, q := range []string{"limit=", "limit", "f=", "f", "limit=&f=1", "limit=5&limit=5", "f=1&f=2", "limit=5&f="} {
		var a fasthttp.Args
		a.Parse(q)
		if _, err := listArgs("42", &a); err == nil {
			t.Errorf("list ?%s accepted", q)
		}
	}
	for _, q := range []string{"contents=", "contents=hi&url=", "contents=hi&url", "contents=a&contents=b", "contents=hi&url=https://a.example/&url=https://b.example/"} {
		var a fasthttp.Args
		a.Parse(q)
		if _, err := testRules.writeArgs("42", &a); err == nil {
			t.Errorf("write_post ?%s accepted", q)
		}
	}
	var a fasthttp.Args
	a.Parse("other=&limit=3")
	if q, err := listArgs("42", &a); err != nil || q.Limit != 3 {
		t.Errorf("?other=&limit=3: got %+v, %v; want limit 3 (unknown parameters are not ours to judge)", q, err)
	}
	a.Parse("contents=hi")
	if w, err := testRules.writeArgs("42", &a); err != nil || w.URL != "" {
		t.Errorf("?contents=hi: got %+v, %v; want a post without a link", w, err)
	}
}

// FuzzListArgs: any raw query string is a valid page request or a 400, and an accepted one never
// came with an empty or repeated f or limit.
func FuzzListArgs(f *testing.F) {
	for _, s := range []string{"", "limit=", "f=1&limit=2", "limit=1&limit=1", "f", "%66=1", "limit=%31"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var a fasthttp.Args
		a.Parse(raw)
		q, err := listArgs("7", &a)
		if err != nil {
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("rejection is not a 400 envelope error: %v", err)
			}
			return
		}
		for _, k := range []string{"f", "limit"} {
			if vs := a.PeekMulti(k); len(vs) > 1 || (len(vs) == 1 && len(vs[0]) == 0) {
				t.Fatalf("?%s accepted as %+v", raw, q)
			}
		}
	})
}
