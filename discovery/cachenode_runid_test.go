package discovery

import "testing"

func TestParseCacheNodeRunID(t *testing.T) {
	tests := []struct{ data, want string }{
		{"", ""},
		{`{"status":"ALIVE","epoch":2}`, ""},
		{`{"status":"ALIVE","epoch":2,"run_id":"4f1c0e"}`, "4f1c0e"},
		{`{"status":"DOWN","run_id":"ab","reason":"restarted"}`, "ab"},
	}
	for _, tc := range tests {
		n, err := ParseCacheNode("redis1:127.0.0.1:6379", []byte(tc.data))
		if err != nil || n.RunID != tc.want {
			t.Errorf("ParseCacheNode(%q): got run_id %q, %v; want %q", tc.data, n.RunID, err, tc.want)
		}
	}
}
