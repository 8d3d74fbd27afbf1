package postsvc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

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
		"{\"user_id\":1,\"contents\":\"\\u0000\",\"url\":\"http://[::1]:80/\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := testRules.parseCreateBody(body)
		checkWriteInvariants(t, w, err)
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
