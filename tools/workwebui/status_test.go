package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestWriteStatusIsJSON: a readiness reason carries text from ZooKeeper (an address), which must
// come out as valid JSON whatever bytes it holds.
func TestWriteStatusIsJSON(t *testing.T) {
	for _, reason := range []string{"plain", `quote " and \ backslash`, "control \x00\x1b bytes", "invalid utf-8 \xff"} {
		rec := httptest.NewRecorder()
		writeStatus(rec, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reasons": []string{reason}})
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("status for %q: got %d, want 503", reason, rec.Code)
		}
		var doc struct{ Reasons []string }
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("body for %q: got %q, want JSON (%v)", reason, rec.Body, err)
		}
		if len(doc.Reasons) != 1 {
			t.Errorf("reasons for %q: got %q, want one", reason, doc.Reasons)
		}
	}
	rec := httptest.NewRecorder()
	writeStatus(rec, http.StatusOK, map[string]any{"status": "ok"})
	if got, want := rec.Body.String(), "{\"status\":\"ok\"}\n"; got != want || rec.Code != http.StatusOK {
		t.Errorf("ok body: got %d %q, want 200 %q", rec.Code, got, want)
	}
}
