package httpapi

import "github.com/valyala/fasthttp"

// QueryParam returns the value of the query parameter name, or nil when the request does not
// carry it. A parameter that is present but empty ("limit=" or a bare "limit") or given more than
// once is refused with 400: treating "limit=" as absent, or picking one of two values, would
// answer a question the client did not ask (docs/api.md, input rules).
func QueryParam(args *fasthttp.Args, name string) ([]byte, error) {
	var val []byte
	seen := false
	for k, v := range args.All() {
		if string(k) != name {
			continue
		}
		if seen {
			return nil, InvalidArgument(name + " must be given at most once")
		}
		if len(v) == 0 {
			return nil, InvalidArgument(name + " must not be empty; leave it out instead")
		}
		seen, val = true, v
	}
	return val, nil
}
