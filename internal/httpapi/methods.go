package httpapi

import "github.com/valyala/fasthttp"

// ReadOnly wraps the router of a daemon whose routes all take GET and HEAD only: any other method
// gets 405 in the envelope with the Allow header RFC 9110 §15.5.6 requires of every 405.
func ReadOnly(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsGet() && !ctx.IsHead() {
			ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
			WriteError(ctx, ErrMethodNotAllowed)
			return
		}
		h(ctx)
	}
}
