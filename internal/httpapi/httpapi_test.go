package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestWriteErrorEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
		wantName   string
		wantMsg    string
	}{
		{"api error", InvalidArgument("count must be 1-4096"), 400, "invalid_argument", "count must be 1-4096"},
		{"wrapped api error", fmt.Errorf("ctx: %w", ErrUnavailable), 503, "unavailable", ErrUnavailable.Message},
		{"internal error hides its text", errors.New("dial tcp 10.0.0.5:3306: secret"), 500, "internal", "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			WriteError(&ctx, tc.err)
			if got := ctx.Response.StatusCode(); got != tc.wantStatus {
				t.Errorf("status: got %d, want %d", got, tc.wantStatus)
			}
			var body struct {
				Code    int    `json:"code"`
				Error   string `json:"error"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
				t.Fatalf("body %q: %v", ctx.Response.Body(), err)
			}
			if body.Code >= 0 || body.Error != tc.wantName || body.Message != tc.wantMsg {
				t.Errorf("body: got %+v, want negative code, %q, %q", body, tc.wantName, tc.wantMsg)
			}
			if got := ErrorName(&ctx); got != tc.wantName {
				t.Errorf("ErrorName: got %q, want %q", got, tc.wantName)
			}
		})
	}
}

func TestWithMessageCopies(t *testing.T) {
	e := ErrNotFound.WithMessage("no post 5")
	if ErrNotFound.Message == "no post 5" || e.Message != "no post 5" || e.Status != 404 {
		t.Fatalf("WithMessage changed the original or lost the status: %+v, %+v", ErrNotFound, e)
	}
}
