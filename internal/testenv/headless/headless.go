// Package headless drives Debian's headless Chromium over the Chrome DevTools protocol, for tests
// that check a page in a real browser: open a URL, evaluate JavaScript, wait for a condition,
// take a screenshot.
//
// It speaks the protocol's few commands it needs (Page.navigate, Runtime.evaluate,
// Page.captureScreenshot) as JSON over golang.org/x/net/websocket, already a dependency, rather
// than pulling in a full client and its generated protocol bindings.
//
// A test that waits in vain keeps a screenshot of the page as its artifact: it is written under
// $ARTIFACTS_DIR (else the system temp directory, zkpost-artifacts/) and its path is printed in
// the failure, since t.TempDir is deleted when the test ends.
package headless

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// Browser is one headless Chromium with one page.
type Browser struct {
	tb  testing.TB
	cmd *exec.Cmd
	ws  *websocket.Conn

	mu      sync.Mutex
	next    int
	pending map[int]chan reply
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Start launches Chromium with a fresh profile and connects to its page; the browser is killed in
// tb.Cleanup. A missing chromium skips the test, or fails it when CI is set (itest.Require).
func Start(tb testing.TB) *Browser {
	tb.Helper()
	bin := itest.Require(tb, "chromium")
	dir := tb.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--window-size=1000,1400", "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--remote-allow-origins=http://127.0.0.1", "--user-data-dir="+dir, "about:blank")
	logf, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting chromium: %v", err)
	}
	b := &Browser{tb: tb, cmd: cmd, pending: map[int]chan reply{}}
	tb.Cleanup(func() {
		if b.ws != nil {
			b.ws.Close()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
	})
	port := waitPort(tb, filepath.Join(dir, "DevToolsActivePort"))
	b.connect(tb, port)
	return b
}

// waitPort reads the DevTools port Chromium writes into its profile once it listens.
func waitPort(tb testing.TB, path string) string {
	tb.Helper()
	var port string
	itest.WaitFor(tb, 30*time.Second, "chromium's DevTools port", func() bool {
		f, err := os.Open(path)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			port = strings.TrimSpace(sc.Text())
		}
		return port != ""
	})
	return port
}

func (b *Browser) connect(tb testing.TB, port string) {
	tb.Helper()
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	itest.WaitFor(tb, 30*time.Second, "chromium's page target", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&targets) != nil {
			return false
		}
		for _, t := range targets {
			if t.Type == "page" && t.WS != "" {
				return true
			}
		}
		return false
	})
	for _, t := range targets {
		if t.Type == "page" {
			ws, err := websocket.Dial(t.WS, "", "http://127.0.0.1")
			if err != nil {
				tb.Fatalf("connecting to chromium's page: %v", err)
			}
			ws.MaxPayloadBytes = 64 << 20
			b.ws = ws
			go b.read()
			return
		}
	}
}

// read dispatches replies to their callers; events are not used.
func (b *Browser) read() {
	for {
		var msg struct {
			ID int `json:"id"`
			reply
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		if msg.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.pending[msg.ID]
		delete(b.pending, msg.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- msg.reply
		}
	}
}

// call sends one protocol command and waits for its result.
func (b *Browser) call(ctx context.Context, method string, params any, result any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan reply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if err := websocket.JSON.Send(b.ws, msg); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: connection to chromium closed", method)
		}
		if r.Error != nil {
			return fmt.Errorf("%s: %s", method, r.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Navigate opens url and waits until its document has loaded.
func (b *Browser) Navigate(url string) {
	b.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, "Page.navigate", map[string]string{"url": url}, &res); err != nil || res.ErrorText != "" {
		b.tb.Fatalf("navigating to %s: %v %s", url, err, res.ErrorText)
	}
	b.WaitTrue(20*time.Second, "the page loaded: "+url, `document.readyState === "complete" && location.href === `+quote(url))
}

// Eval evaluates a JavaScript expression in the page and decodes its value into out.
func (b *Browser) Eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	params := map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}
	if err := b.call(ctx, "Runtime.evaluate", params, &res); err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("evaluating %q: %s", expr, res.Exception.Text)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// WaitTrue polls expr until it is true. On timeout it keeps a screenshot and fails the test with
// the screenshot's path.
func (b *Browser) WaitTrue(timeout time.Duration, what, expr string) {
	b.tb.Helper()
	var lastErr error
	ok := itest.Eventually(timeout, func() bool {
		var v bool
		lastErr = b.Eval(expr, &v)
		return lastErr == nil && v
	})
	if !ok {
		b.Fail(fmt.Sprintf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr))
	}
}

// Fail keeps a screenshot of the page and fails the test with msg and the screenshot's path.
func (b *Browser) Fail(msg string) {
	b.tb.Helper()
	path, err := b.keepScreenshot()
	if err != nil {
		b.tb.Fatalf("%s (no screenshot: %v)", msg, err)
	}
	b.tb.Fatalf("%s; screenshot: %s", msg, path)
}

// Screenshot writes a PNG of the page to path.
func (b *Browser) Screenshot(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res struct {
		Data string `json:"data"`
	}
	if err := b.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &res); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		return fmt.Errorf("decoding the screenshot: %w", err)
	}
	if len(png) == 0 {
		return errors.New("empty screenshot")
	}
	return os.WriteFile(path, png, 0o644)
}

func (b *Browser) keepScreenshot() (string, error) {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "zkpost-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(b.tb.Name())
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.png", name, time.Now().Format("20060102-150405")))
	return path, b.Screenshot(path)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
