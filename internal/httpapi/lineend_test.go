package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// startEcho serves, through BareLFListener, a handler that echoes method, path, one header and
// the body. ReadTimeout is far beyond the test's read deadline, so a request fasthttp waited on
// fails the test instead of being answered late.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetBodyString(string(ctx.Method()) + " " + string(ctx.Path()) + " x=" + string(ctx.Request.Header.Peek("X")) + " body=" + string(ctx.PostBody()))
		},
		ReadTimeout:  time.Minute,
		ErrorHandler: TransportError,
	}
	go srv.Serve(BareLFListener(ln))
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// roundTrip writes raw in pieces of size step (0: at once) and reads len(want) responses.
func roundTrip(t *testing.T, addr, raw string, step, responses int) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		if step == 0 {
			step = len(raw)
		}
		for i := 0; i < len(raw); i += step {
			if _, err := c.Write([]byte(raw[i:min(i+step, len(raw))])); err != nil {
				return
			}
		}
	}()
	// Generous: fasthttp without the wrapper answers only when its read timeout (a minute) ends.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var got []string
	for range responses {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %q: reading response %d: %v", raw, len(got)+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, resp.Status[:3]+" "+string(b))
	}
	return got
}

func TestBareLFRequests(t *testing.T) {
	addr := startEcho(t)
	tests := []struct {
		name, raw string
		want      []string
	}{
		{"CRLF", "GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n", []string{"200 GET /a x=1 body="}},
		{"LF only", "GET /a HTTP/1.1\nHost: h\nX: 1\n\n", []string{"200 GET /a x=1 body="}},
		{"LF head end only", "GET /a HTTP/1.1\r\nHost: h\r\nX: 1\n\n", []string{"200 GET /a x=1 body="}},
		{"LF then CRLF end", "GET /a HTTP/1.1\nHost: h\n\r\n", []string{"200 GET /a x= body="}},
		{"HTTP/1.0", "GET /b HTTP/1.0\n\n", []string{"200 GET /b x= body="}},
		{"leading empty line", "\nGET /c HTTP/1.1\nHost: h\n\n", []string{"200 GET /c x= body="}},
		{"body keeps its LFs", "POST /p HTTP/1.1\nHost: h\nContent-Length: 6\n\na\nb\n\nc", []string{"200 POST /p x= body=a\nb\n\nc"}},
		{"body that looks like a head", "POST /p HTTP/1.1\nHost: h\nContent-Length: 19\n\nGET /x HTTP/1.1\n\n\n\n", []string{"200 POST /p x= body=GET /x HTTP/1.1\n\n\n\n"}},
		{"pipelined", "POST /1 HTTP/1.1\nHost: h\nContent-Length: 2\n\n\n\nGET /2 HTTP/1.1\nHost: h\nX: y\n\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
			[]string{"200 POST /1 x= body=\n\n", "200 GET /2 x=y body=", "200 GET /3 x= body="}},
		{"content-length case", "POST /p HTTP/1.1\ncOnTeNt-LeNgTh:  3 \nHost: h\n\nx\ny", []string{"200 POST /p x= body=x\ny"}},
		{"chunked", "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\nb\r\n0\r\n\r\n", []string{"200 POST /p x= body=a\nb"}},
		{"missing host", "GET /a HTTP/1.1\nX: 1\n\n", []string{"400 "}},
		{"garbage", "\x16\x03\x01\x00\n\n", []string{"400 "}},
	}
	for _, tt := range tests {
		for _, step := range []int{0, 1, 3} {
			got := roundTrip(t, addr, tt.raw, step, len(tt.want))
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) || (tt.want[i][0] == '2' && got[i] != tt.want[i]) {
					t.Errorf("%s (written %d bytes at a time): response %d %q, want %q", tt.name, step, i, got[i], tt.want[i])
				}
			}
		}
	}
}

// transformAll feeds b to a fresh connection state in pieces of size step.
func transformAll(b []byte, step int) []byte {
	c := &lfConn{contentLength: -1}
	var out []byte
	for i := 0; i < len(b); i += step {
		piece := b[i:min(i+step, len(b))]
		if t := c.transform(piece); t != nil {
			out = append(out, t...)
		} else {
			out = append(out, piece...)
		}
	}
	return out
}

// FuzzBareLF: the wrapper only ever inserts a CR before an LF, and how the bytes arrive split
// does not change what it makes of them.
func FuzzBareLF(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\nHost: h\n\n", "POST / HTTP/1.1\nContent-Length: 3\n\na\nbGET /\n\n",
		"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\n\n1\n\n", "\n\n\r\r\n", "P\nContent-Length: 1\nContent-Length: 2\n\n\n\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		whole := transformAll(in, max(len(in), 1))
		if split := transformAll(in, int(step%16)+1); !bytes.Equal(whole, split) {
			t.Fatalf("%q: whole %q, split by %d %q", in, whole, step%16+1, split)
		}
		j := 0
		for i := 0; i < len(in); j++ {
			switch {
			case j < len(whole) && whole[j] == in[i]:
				i++
			case j < len(whole) && whole[j] == '\r' && in[i] == '\n':
			default:
				t.Fatalf("%q became %q: more than a CR before an LF changed", in, whole)
			}
		}
		if j != len(whole) {
			t.Fatalf("%q became %q: bytes added at the end", in, whole)
		}
	})
}
