package postsvc

import (
	"strconv"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/headless"
)

// TestDemoPageInBrowser: in headless Chromium the demo page's script runs under its CSP, opens
// the stream, and puts a post written through the API on top without a reload.
func TestDemoPageInBrowser(t *testing.T) {
	h := newStreamHarness(t, 1, nil)
	h.write(6, "first", "")
	b := headless.Start(t)
	b.Navigate(h.base + "/demo?user_id=6")
	if err := b.Eval(`window.notReloaded = true`, nil); err != nil {
		t.Fatal(err)
	}
	b.WaitTrue(10*time.Second, "the page's stream open", `document.getElementById("posts").dataset.stream === "open"`)
	p := h.write(6, "second, live", "https://example.com/\u00e4")
	b.WaitTrue(10*time.Second, "the live post on top", `document.querySelector("#posts article").id === "post-`+strconv.FormatUint(p.ID, 10)+`" && window.notReloaded === true`)
	var link [2]string
	if err := b.Eval(`(() => { const l = document.querySelector("#posts article a.link"); return [l.getAttribute("href"), l.textContent]; })()`, &link); err != nil {
		t.Fatal(err)
	}
	if link[0] != link[1] || link[1] != visibleURL("https://example.com/\u00e4") {
		b.Fail("live post link: shows " + link[1] + ", links " + link[0] + "; want both " + visibleURL("https://example.com/\u00e4"))
	}
}
