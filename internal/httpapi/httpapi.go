// Package httpapi holds the JSON response helpers and the error envelope shared by every HTTP API
// of the project.
//
// The envelope keeps the reference's {"code": <negative int>, "message": "..."} and adds a stable
// machine-readable name: {"code": -2, "error": "invalid_argument", "message": "count must be 1-4096"}.
// The HTTP status is chosen once, where the error is defined, so handlers never pick statuses ad hoc,
// and internals (Go error strings) are logged rather than returned.
package httpapi

import (
	"encoding/json"
	"errors"
	"net"

	"github.com/valyala/fasthttp"
)

// Error is an API error: an HTTP status, the reference's negative code, a stable name and a message
// safe to show to clients.
type Error struct {
	Status  int    `json:"-"`
	Code    int    `json:"code"`
	Name    string `json:"error"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return e.Name + ": " + e.Message }

// WithMessage returns a copy of e carrying msg.
func (e *Error) WithMessage(msg string) *Error {
	c := *e
	c.Message = msg
	return &c
}

// Common errors every API shares.
var (
	ErrNotFound         = &Error{Status: fasthttp.StatusNotFound, Code: -404, Name: "not_found", Message: "no such resource"}
	ErrMethodNotAllowed = &Error{Status: fasthttp.StatusMethodNotAllowed, Code: -405, Name: "method_not_allowed", Message: "method not allowed"}
	ErrUnavailable      = &Error{Status: fasthttp.StatusServiceUnavailable, Code: -503, Name: "unavailable", Message: "service temporarily unavailable"}
	ErrInternal         = &Error{Status: fasthttp.StatusInternalServerError, Code: -500, Name: "internal", Message: "internal error"}
)

// InvalidArgument returns a 400 error naming what was wrong with the request.
func InvalidArgument(msg string) *Error {
	return &Error{Status: fasthttp.StatusBadRequest, Code: -400, Name: "invalid_argument", Message: msg}
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(ctx, ErrInternal)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

// WriteError writes err in the envelope. An error that is not an *Error becomes a 500 without its
// text, so internals never leak; callers log it first.
func WriteError(ctx *fasthttp.RequestCtx, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = ErrInternal
	}
	b, _ := json.Marshal(e)
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
	ctx.SetUserValue(errorNameKey, e.Name)
}

type ctxKey string

const errorNameKey ctxKey = "httpapi.error"

// ErrorName returns the name of the error WriteError wrote for this request, or "".
func ErrorName(ctx *fasthttp.RequestCtx) string {
	s, _ := ctx.UserValue(errorNameKey).(string)
	return s
}

// TransportError is the fasthttp.Server ErrorHandler every daemon uses: requests fasthttp could
// not read are answered in the envelope, except a read that timed out, whose connection is closed
// without an answer. A client that opened a connection and sent nothing (Go's http.Transport
// pre-dials spare connections) would otherwise get a response it never asked for, which it logs as
// "Unsolicited response received on idle HTTP channel".
func TransportError(ctx *fasthttp.RequestCtx, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		ctx.Conn().Close()
		return
	}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		WriteError(ctx, ErrTooLarge)
	case errors.As(err, &small):
		WriteError(ctx, ErrHeadersTooLarge)
	default:
		WriteError(ctx, InvalidArgument("malformed request"))
	}
}

// Errors for requests that could not be read.
var (
	ErrTooLarge        = &Error{Status: fasthttp.StatusRequestEntityTooLarge, Code: -413, Name: "too_large", Message: "request body too large"}
	ErrHeadersTooLarge = &Error{Status: fasthttp.StatusRequestHeaderFieldsTooLarge, Code: -431, Name: "headers_too_large", Message: "request headers too large"}
)
