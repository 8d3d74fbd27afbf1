package guid_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/the-red/zkpost/guid"
)

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0", "1", "9223372036854775807", "9223372036854775808", "18446744073709551615",
		"-1", "+1", " 1", "1e9", "0x10", "", "00000000000000000001", "१२३"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := guid.ParseID(s)
		want, werr := strconv.ParseUint(s, 10, 63)
		okDigits := werr == nil && len(s) <= 19 && s[0] != '+'
		if (err == nil) != okDigits {
			t.Fatalf("ParseID(%q) err %v; strconv says %v", s, err, werr)
		}
		if err == nil {
			if id != want {
				t.Fatalf("ParseID(%q) = %d, want %d", s, id, want)
			}
			d := guid.Decode(id)
			if back := guid.Compose(d.Ms, d.Datacenter, d.Worker, d.Sequence); back != id {
				t.Fatalf("Compose(Decode(%d)) = %d", id, back)
			}
		}
	})
}

func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"1", "4096", "4097", "0", "abc", "", "-1", "+5", "0004", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := guid.ParseCount([]byte(s))
		want, err := strconv.Atoi(s)
		wantOK := err == nil && want >= 1 && want <= guid.MaxBatch && s[0] != '+' && s[0] != '-' && len(s) <= 6
		if ok != wantOK || (ok && n != want) {
			t.Fatalf("ParseCount(%q) = %d, %v; want %d, %v", s, n, ok, want, wantOK)
		}
	})
}

// FuzzHandler sends arbitrary paths and queries: the answer is always a known status with a JSON
// body, never a panic or a 5xx other than 503.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"/api/v1/guid", "/api/v1/guid?count=12", "/api/v1/guid?count=%00", "/api/v1/guid/1/decode",
		"/api/v1/guid/%2F/decode", "/api/v1/guid/../decode", "/api/v1/guid/18446744073709551616/decode", "/readyz", "//", "/api/v1/guid?count=1&count=abc"} {
		f.Add(s)
	}
	h := newOfflineServer(f).Handler()
	f.Fuzz(func(t *testing.T, uri string) {
		resp := serve(h, "GET", uri)
		switch resp.StatusCode() {
		case 200, 400, 404, 503:
		default:
			t.Fatalf("GET %q: status %d", uri, resp.StatusCode())
		}
		if ct := string(resp.Header.ContentType()); strings.HasPrefix(ct, "application/json") && !json.Valid(resp.Body()) {
			t.Fatalf("GET %q: body not JSON: %q", uri, resp.Body())
		}
	})
}

// FuzzParseStoredClock: a clock node's data is written by guidd, but anyone with access to
// ZooKeeper may edit it; whatever it holds parses to a non-negative bound or an error.
func FuzzParseStoredClock(f *testing.F) {
	for _, s := range []string{"", " ", "1795375187865\n", "-1", "0x10", "9223372036854775807", "9223372036854775808", "1.5e12"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := guid.ParseStoredClock(data)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseStoredClock(%q) = %d, want a non-negative bound", data, v)
		}
		if back, err := guid.ParseStoredClock([]byte(strconv.FormatInt(v, 10))); err != nil || back != v {
			t.Fatalf("ParseStoredClock(%q) = %d; written back it reads %d, %v", data, v, back, err)
		}
	})
}
