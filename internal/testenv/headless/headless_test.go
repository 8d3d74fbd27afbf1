package headless_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/headless"
)

// TestBrowserRunsPageScript loads a page whose script changes the document after a moment, waits
// for the change, and takes a screenshot.
func TestBrowserRunsPageScript(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>t</title><p id="x">before</p>
<script>setTimeout(() => { document.getElementById("x").textContent = "after"; }, 200);</script>`))
	}))
	defer srv.Close()
	b := headless.Start(t)
	b.Navigate(srv.URL + "/")
	b.WaitTrue(10*time.Second, "the script's change", `document.getElementById("x").textContent === "after"`)
	var title string
	if err := b.Eval(`document.title`, &title); err != nil || title != "t" {
		t.Fatalf("title: got %q (%v), want t", title, err)
	}
	if err := b.Eval(`nosuchfunction()`, nil); err == nil {
		t.Fatal("a throwing expression: got no error")
	}
	path := filepath.Join(t.TempDir(), "page.png")
	if err := b.Screenshot(path); err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: got %d bytes (%v), want a PNG", len(png), err)
	}
}
