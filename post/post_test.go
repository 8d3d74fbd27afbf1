package post

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var big = Post{
	ID:        1<<63 - 5, // far past 2^53: a float64 would round it
	UserID:    1<<53 + 1,
	Contents:  "héllo <b>&amp;</b> 🐙",
	URL:       "https://example.com/a?b=c",
	Scrap:     json.RawMessage(`{"title":"T"}`),
	CreatedAt: time.Date(2026, 11, 22, 18, 0, 0, 123e6, time.UTC),
}

func TestJSONRoundTripKeepsBigIDs(t *testing.T) {
	b, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"post_id":9223372036854775803`, `"post_id_str":"9223372036854775803"`, `"created_at":"2026-11-22T18:00:00.123Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Post
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, big) {
		t.Errorf("round trip: got %+v, want %+v", back, big)
	}
}

func TestJSONNoURLNoScrap(t *testing.T) {
	b, _ := json.Marshal(Post{ID: 1, UserID: 2, Contents: "x", CreatedAt: time.Unix(0, 0)})
	if !strings.Contains(string(b), `"url":null`) || !strings.Contains(string(b), `"scrap":{}`) {
		t.Errorf("got %s, want url null and scrap {}", b)
	}
}

func TestArgsRoundTrip(t *testing.T) {
	// gocraft/work hands arguments back after a JSON round trip: simulate it.
	raw, _ := json.Marshal(big.Args())
	var args map[string]any
	if err := json.Unmarshal(raw, &args); err != nil {
		t.Fatal(err)
	}
	got, err := FromArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, big) {
		t.Errorf("got %+v, want %+v", got, big)
	}
}

func TestFromArgsRejectsNumbers(t *testing.T) {
	a := big.Args()
	a["post_id"] = float64(big.ID) // what a numeric argument decodes to: rounded
	if _, err := FromArgs(a); err == nil {
		t.Fatal("a float64 post_id was accepted; it may have been rounded")
	}
}

func TestFromArgsNamesTheBadArgument(t *testing.T) {
	for _, tc := range []struct {
		key string
		val any
	}{
		{"post_id", "12x"},
		{"user_id", nil},
		{"contents", 3.0},
		{"url", false},
		{"created_at", "yesterday"},
		{"scrap", "{"},
	} {
		a := big.Args()
		a[tc.key] = tc.val
		_, err := FromArgs(a)
		if err == nil || !strings.Contains(err.Error(), `"`+tc.key+`"`) {
			t.Errorf("%s = %#v: got error %v, want one naming %q", tc.key, tc.val, err, tc.key)
		}
	}
}

func FuzzFromArgs(f *testing.F) {
	raw, _ := json.Marshal(big.Args())
	f.Add(string(raw))
	f.Add(`{"post_id":"1","user_id":"x"}`)
	f.Fuzz(func(t *testing.T, s string) {
		var args map[string]any
		if json.Unmarshal([]byte(s), &args) != nil {
			return
		}
		p, err := FromArgs(args)
		if err != nil {
			return
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("decoded post does not marshal: %v", err)
		}
	})
}
