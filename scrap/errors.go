package scrap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
)

// The errors of the scrap API (docs/api.md#scrapd), each with its HTTP status chosen here, once.
//
// Status choices worth a word:
//   - robots_disallowed is 403: the site's own policy forbids the fetch; retrying elsewhere will not help.
//   - not_html is 415: the resource exists but is of a type we do not preview. An image/* answer is
//     not an error: the URL is the image, so the preview carries it as image (200).
//   - too_large is 502: reading stops at --max-body and the prefix is parsed (og tags live in <head>);
//     only a page whose <head> does not end within the cap fails, as its metadata would be cut off.
//   - decode_error is 502: the upstream sent a corrupt or unknown Content-Encoding.
//
// Everything upstream-shaped is 5xx (so postsvc may try another scrapd or give up), everything the
// caller can fix or that no scrapd would do differently is 4xx (so postsvc does not retry).
var (
	ErrInvalidURL       = &httpapi.Error{Status: fasthttp.StatusBadRequest, Code: -1001, Name: "invalid_url", Message: "the url is not an absolute http(s) URL"}
	ErrBlockedAddress   = &httpapi.Error{Status: fasthttp.StatusForbidden, Code: -1002, Name: "blocked_address", Message: "the url points to an address or port that may not be fetched"}
	ErrRobotsDisallowed = &httpapi.Error{Status: fasthttp.StatusForbidden, Code: -1003, Name: "robots_disallowed", Message: "the site's robots.txt disallows fetching this url"}
	ErrDNSFailure       = &httpapi.Error{Status: fasthttp.StatusBadGateway, Code: -1004, Name: "dns_failure", Message: "the host name could not be resolved"}
	ErrConnect          = &httpapi.Error{Status: fasthttp.StatusBadGateway, Code: -1005, Name: "connect_error", Message: "could not connect to the host"}
	ErrTLS              = &httpapi.Error{Status: fasthttp.StatusBadGateway, Code: -1006, Name: "tls_error", Message: "the TLS handshake with the host failed"}
	ErrTimeout          = &httpapi.Error{Status: fasthttp.StatusGatewayTimeout, Code: -1007, Name: "timeout", Message: "the page did not arrive in time"}
	ErrTooManyRedirects = &httpapi.Error{Status: fasthttp.StatusBadGateway, Code: -1008, Name: "too_many_redirects", Message: "too many redirects"}
	ErrUpstreamStatus   = &httpapi.Error{Status: fasthttp.StatusBadGateway, Code: -1009, Name: "upstream_status", Message: "the host answered with an error status"}
	ErrNotHTML          = &httpapi.Error{Status: fasthttp.StatusUnsupportedMediaType, Code: -1010, Name: "not_html", Message: "the url is not an HTML page"}
	ErrTooLarge         = &httpapi.Error{Status: fasthttp.StatusBadGateway, Code: -1011, Name: "too_large", Message: "the page's head is larger than the read limit"}
	ErrDecode           = &httpapi.Error{Status: fasthttp.StatusBadGateway, Code: -1012, Name: "decode_error", Message: "the page could not be decoded"}
)

// blockedError is a dial or URL refused by the SSRF guard. Its text is for logs only.
type blockedError struct{ reason string }

func (e *blockedError) Error() string { return "blocked: " + e.reason }

// dnsError is a name that did not resolve (or resolved to nothing).
type dnsError struct {
	host string
	err  error
}

func (e *dnsError) Error() string { return "resolving " + e.host + ": " + e.err.Error() }
func (e *dnsError) Unwrap() error { return e.err }

// errTooManyRedirects is returned by CheckRedirect past the redirect limit.
var errTooManyRedirects = errors.New("too many redirects")

// classify maps an error of the fetch path to the API error clients see. An *httpapi.Error passes
// through; anything else is matched on its type, and whatever is left is a connect error. The Go
// error text never reaches clients: callers log it.
func classify(err error) *httpapi.Error {
	var api *httpapi.Error
	var blocked *blockedError
	var dns *dnsError
	var netDNS *net.DNSError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &api):
		return api
	case errors.As(err, &blocked):
		return ErrBlockedAddress
	case errors.Is(err, errTooManyRedirects):
		return ErrTooManyRedirects
	case errors.As(err, &dns), errors.As(err, &netDNS):
		return ErrDNSFailure
	case isTimeout(err):
		return ErrTimeout
	case isTLS(err):
		return ErrTLS
	}
	return ErrConnect
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isTLS(err error) bool {
	var (
		rec      tls.RecordHeaderError
		alert    tls.AlertError
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &rec) || errors.As(err, &alert) || errors.As(err, &verify) ||
		errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}
