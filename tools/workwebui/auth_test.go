package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// startUI runs workwebui in-process against a real queue Redis (--queue, no ZooKeeper) with env
// as its environment, and returns its base URL.
func startUI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	r := itest.StartRedis(t, itest.RedisOptions{})
	port := itest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--queue", r.Addr()}, args...),
			func(k string) string { return env[k] }, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	itest.WaitFor(t, 20*time.Second, "/readyz", func() bool { return status(base+"/readyz") == http.StatusOK })
	return base
}

// do sends method path with optional basic credentials through a real HTTP client and returns the
// status, the headers and the body.
func do(t *testing.T, method, url string, creds ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if len(creds) == 2 {
		req.SetBasicAuth(creds[0], creds[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// wantEnvelope fails unless body is the JSON error envelope named name.
func wantEnvelope(t *testing.T, what, body, name string) {
	t.Helper()
	var e envelope
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Name != name || e.Code >= 0 || e.Message == "" {
		t.Errorf("%s: body %q, want the envelope with error %q", what, body, name)
	}
}

func TestBasicAuth(t *testing.T) {
	const user, password = "ops", "s3cret-pässword"
	base := startUI(t, map[string]string{"WORKWEBUI_USER": user, "WORKWEBUI_PASSWORD": password})
	for _, p := range []string{"/", "/queues", "/work.js", "/no-such-page"} {
		for _, creds := range [][]string{nil, {user, ""}, {"", password}, {user, password[:len(password)-1]},
			{user, password + "x"}, {strings.ToUpper(user), password}, {password, user}, {user + ":" + password, ""}} {
			code, h, body := do(t, "GET", base+p, creds...)
			if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("GET %s with %q: %d WWW-Authenticate=%q, want 401 asking for basic credentials", p, creds, code, h.Get("WWW-Authenticate"))
			}
			wantEnvelope(t, "401", body, "unauthorized")
		}
	}
	for _, p := range []string{"/", "/queues", "/work.js"} {
		if code, _, _ := do(t, "GET", base+p, user, password); code != http.StatusOK {
			t.Errorf("GET %s with the credentials: %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} { // probes stay open
		if code, _, _ := do(t, "GET", base+p); code != http.StatusOK {
			t.Errorf("GET %s without credentials: %d, want 200", p, code)
		}
	}
}

func TestBasicAuthNeedsBoth(t *testing.T) {
	for _, env := range []map[string]string{{"WORKWEBUI_USER": "ops"}, {"WORKWEBUI_PASSWORD": "x"}} {
		err := run(context.Background(), []string{"--listen", "127.0.0.1:0", "--queue", "127.0.0.1:1"},
			func(k string) string { return env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "both") {
			t.Errorf("env %v: got %v, want an error asking for both", env, err)
		}
	}
}

// TestErrorsAreEnvelopes: whichever layer refuses a request (the UI's router, our routes, or
// net/http before any handler runs), the answer is the JSON envelope with the right status.
func TestErrorsAreEnvelopes(t *testing.T) {
	base := startUI(t, nil)
	code, _, body := do(t, "GET", base+"/no-such-page")
	if code != http.StatusNotFound {
		t.Errorf("unknown UI path: %d, want 404", code)
	}
	wantEnvelope(t, "unknown UI path", body, "not_found")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			code, h, body := do(t, m, base+p)
			if code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow=%q, want 405 with Allow: GET, HEAD", m, p, code, h.Get("Allow"))
			}
			wantEnvelope(t, m+" "+p, body, "method_not_allowed")
		}
	}
	addr := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct {
		raw    string
		status int
		name   string
	}{
		{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"},
		{"GET / HTTP/3.1\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"},
		{"GARBAGE\r\n\r\n", 400, "invalid_argument"},
		{"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "invalid_argument"},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not_implemented"},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", 431, "headers_too_large"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go io.WriteString(c, tc.raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", tc.raw, err)
		}
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%.40q: %d %q, want %d in JSON", tc.raw, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status)
		}
		wantEnvelope(t, tc.raw[:min(len(tc.raw), 30)], string(b), tc.name)
	}
}

// FuzzServerError: only net/http's own pre-handler answer is recognised for rewriting, never a
// handler's response, whatever bytes a write carries.
func FuzzServerError(f *testing.F) {
	f.Add([]byte("HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + serverErrorHeaders + "505 x"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nX: y" + serverErrorHeaders))
	f.Fuzz(func(t *testing.T, p []byte) {
		status, ok := serverError(p)
		if !ok {
			return
		}
		line, _, _ := strings.Cut(string(p), "\r\n")
		if status < 400 || status > 999 || !strings.HasPrefix(string(p), "HTTP/1.1 ") ||
			!strings.HasPrefix(string(p)[len(line):], serverErrorHeaders) {
			t.Fatalf("%q taken for a server error %d", p, status)
		}
	})
}
