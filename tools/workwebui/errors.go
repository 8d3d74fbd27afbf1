package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// envelope is the project's JSON error body (internal/httpapi), written here through net/http:
// workwebui is the one net/http server of the project.
type envelope struct {
	Code    int    `json:"code"`
	Name    string `json:"error"`
	Message string `json:"message"`
}

// errorFor returns the envelope for an HTTP error status.
func errorFor(status int) envelope {
	name := map[int]string{
		http.StatusBadRequest: "invalid_argument", http.StatusUnauthorized: "unauthorized",
		http.StatusNotFound: "not_found", http.StatusMethodNotAllowed: "method_not_allowed",
		http.StatusRequestHeaderFieldsTooLarge: "headers_too_large", http.StatusNotImplemented: "not_implemented",
		http.StatusHTTPVersionNotSupported: "http_version_not_supported", http.StatusServiceUnavailable: "unavailable",
	}[status]
	if name == "" {
		name = strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
	}
	return envelope{Code: -status, Name: name, Message: strings.ToLower(http.StatusText(status))}
}

func (e envelope) body() []byte {
	b, _ := json.Marshal(e)
	return b
}

// writeError answers status in the envelope.
func writeError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(errorFor(status).body())
}

// envelopeUIErrors is the reverse proxy's ModifyResponse: gocraft/work's UI answers an unknown
// path or method with "Not Found" (labelled JSON, which it is not) and its own failures with its
// own JSON; the client gets the envelope for every error, and a UI failure's text, which names
// internal addresses, goes to the log.
func (s *server) envelopeUIErrors(resp *http.Response) error {
	if resp.StatusCode < 400 {
		return nil
	}
	if resp.StatusCode >= 500 {
		detail, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		s.log.Warn("ui error", "status", resp.StatusCode, "path", resp.Request.URL.Path, "body", string(detail))
	}
	resp.Body.Close()
	body := errorFor(resp.StatusCode).body()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/json; charset=utf-8")
	return nil
}

// serverErrorHeaders is what net/http writes after the status line of the answers it gives before
// any handler runs (a malformed request 400, headers too large 431, an unknown transfer coding
// 501, a protocol version other than HTTP/1.x 505), in one write straight to the connection. A
// handler's response never has it: net/http writes the headers of those sorted, Connection first.
const serverErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// envelopeListener rewrites those answers into the envelope, so every error workwebui gives is
// JSON, whichever layer gives it.
type envelopeListener struct{ net.Listener }

func (l envelopeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return envelopeConn{c}, nil
}

type envelopeConn struct{ net.Conn }

func (c envelopeConn) Write(p []byte) (int, error) {
	status, ok := serverError(p)
	if !ok {
		return c.Conn.Write(p)
	}
	body := errorFor(status).body()
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	if _, err := io.WriteString(c.Conn, resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

// serverError recognises a write of net/http's own error answer and returns its status.
func serverError(p []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[3] != ' ' {
		return 0, false
	}
	line, _, ok := bytes.Cut(rest, []byte(serverErrorHeaders))
	if !ok || bytes.Contains(line, []byte("\r\n")) {
		return 0, false
	}
	status, err := strconv.Atoi(string(rest[:3]))
	return status, err == nil && status >= 400
}
