package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Config{Format: "json", Level: "info"}, "guidd")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("lease acquired", "worker", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec["msg"] != "lease acquired" || rec["svc"] != "guidd" || rec["worker"] != float64(3) {
		t.Errorf("got %v, want msg, svc and worker attributes", rec)
	}

	buf.Reset()
	log, err = New(&buf, Config{Format: "text", Level: "debug"}, "scrapd")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("fetch", "url", "http://x")
	if got := buf.String(); !strings.Contains(got, "msg=fetch") || !strings.Contains(got, "svc=scrapd") {
		t.Errorf("text record %q lacks msg or svc", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Format: "xml", Level: "info"}, {Format: "json", Level: "loud"}} {
		if _, err := New(&bytes.Buffer{}, cfg, "x"); err == nil {
			t.Errorf("config %+v: got no error", cfg)
		}
	}
}
