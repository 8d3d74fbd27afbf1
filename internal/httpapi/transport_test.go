package httpapi

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func serveTransport(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler:            func(ctx *fasthttp.RequestCtx) { WriteJSON(ctx, 200, "ok") },
		ErrorHandler:       TransportError,
		ReadTimeout:        300 * time.Millisecond,
		MaxRequestBodySize: 16,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// exchange sends raw bytes and returns everything the server wrote before closing.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if raw != "" {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestTransportError(t *testing.T) {
	addr := serveTransport(t)
	for _, tc := range []struct{ name, raw, want string }{
		{"silent connection is closed without an answer", "", ""},
		{"malformed request", "NOT HTTP\r\n\r\n", `"error":"invalid_argument"`},
		{"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 100), `"error":"too_large"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, addr, tc.raw)
			if tc.want == "" && got != "" {
				t.Fatalf("got %q, want the connection closed with no response", got)
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want a response containing %s", got, tc.want)
			}
		})
	}
}
