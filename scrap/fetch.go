package scrap

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
)

// Resolver resolves host names; *net.Resolver implements it. Tests inject one that maps names to
// chosen addresses (inward ones included), since the guard must hold whatever DNS answers.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Fetcher makes the outbound HTTP requests of scrapd: pages and robots.txt, through one guarded
// client. Its transport ignores environment proxies (Proxy: nil): a proxy would connect on our
// behalf and the dial-time check would only ever see the proxy's address.
type Fetcher struct {
	guard    *Guard
	resolver Resolver
	dialer   *net.Dialer
	client   *http.Client
	ua       string
	maxBody  int64
	maxHops  int
}

// FetcherConfig holds the limits of a Fetcher.
type FetcherConfig struct {
	ConnectTimeout time.Duration // per TCP connect
	TLSTimeout     time.Duration // per TLS handshake
	MaxBody        int64         // bytes of (decoded) body read at most
	MaxRedirects   int
	UserAgent      string
}

// NewFetcher returns a fetcher dialing only what guard allows, resolving names with resolver.
func NewFetcher(cfg FetcherConfig, guard *Guard, resolver Resolver) *Fetcher {
	f := &Fetcher{
		guard:    guard,
		resolver: resolver,
		dialer:   &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second, Control: guard.control},
		ua:       cfg.UserAgent,
		maxBody:  cfg.MaxBody,
		maxHops:  cfg.MaxRedirects,
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            f.dial,
		TLSHandshakeTimeout:    cfg.TLSTimeout,
		ForceAttemptHTTP2:      true,
		DisableCompression:     true, // we ask for and decode gzip/deflate/br ourselves, under our limits
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        30 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	f.client = &http.Client{Transport: tr, CheckRedirect: f.checkRedirect}
	return f
}

// Close drops idle connections.
func (f *Fetcher) Close() { f.client.CloseIdleConnections() }

// dial resolves addr, checks every candidate address with the guard and connects to the first
// allowed one that answers. The dialer's Control hook checks the connected address once more.
func (f *Fetcher) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &blockedError{reason: "bad dial address " + addr}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &blockedError{reason: "bad dial port " + portStr}
	}
	addrs, err := f.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var blocked, dialErr error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		if err := f.guard.Check(ap); err != nil {
			blocked = err
			continue
		}
		c, err := f.dialer.DialContext(ctx, "tcp", ap.String())
		if err == nil {
			return c, nil
		}
		dialErr = err
	}
	if dialErr != nil {
		return nil, dialErr
	}
	return nil, blocked
}

func (f *Fetcher) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	h, err := normalizeHost(host)
	if err != nil {
		return nil, &blockedError{reason: "unparsable host " + host}
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := f.resolver.LookupNetIP(ctx, "ip", h)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &dnsError{host: h, err: err}
	}
	if len(addrs) == 0 {
		return nil, &dnsError{host: h, err: errors.New("no addresses")}
	}
	return addrs, nil
}

// checkRedirect re-validates each hop (scheme, userinfo, host form) and bounds their number; the
// dial check covers the hop's address.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.maxHops {
		return errTooManyRedirects
	}
	u, err := normalizeURL(req.URL)
	if err != nil {
		return ErrBlockedAddress.WithMessage("redirected to a url that may not be fetched")
	}
	req.URL = u
	if check, _ := req.Context().Value(hopCheckKey{}).(hopCheck); check != nil {
		prev := via[len(via)-1].URL
		if prev.Scheme != u.Scheme || prev.Host != u.Host {
			return check(req.Context(), u)
		}
	}
	return nil
}

// hopCheck is run on each redirect hop to a new origin (robots.txt of that origin).
type hopCheck func(ctx context.Context, u *url.URL) error

type hopCheckKey struct{}

func withHopCheck(ctx context.Context, check hopCheck) context.Context {
	return context.WithValue(ctx, hopCheckKey{}, check)
}

// withoutHopCheck keeps a nested fetch (robots.txt itself) from running the hop check.
func withoutHopCheck(ctx context.Context) context.Context {
	return context.WithValue(ctx, hopCheckKey{}, hopCheck(nil))
}

// get sends a GET for u, following redirects. The caller closes the body.
func (f *Fetcher) get(ctx context.Context, u *url.URL, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, ErrInvalidURL.WithMessage("the url does not parse")
	}
	req.Header.Set("User-Agent", f.ua)
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u.Redacted(), err)
	}
	return resp, nil
}

// Page is a fetched HTML page or image.
type Page struct {
	URL         *url.URL // after redirects
	ContentType string   // the Content-Type header as sent
	Image       bool     // an image/* answer: no body read
	Body        []byte   // decoded from its Content-Encoding, at most MaxBody bytes
	Truncated   bool     // the body went on past MaxBody
}

const pageAccept = "text/html,application/xhtml+xml;q=0.9,image/*;q=0.5,*/*;q=0.1"

// FetchPage fetches u. Statuses ≥ 300 left after redirects are ErrUpstreamStatus (even when the
// error page has og tags: it is not the page the link meant); types other than HTML, XHTML and
// images are ErrNotHTML. A body past the cap is cut there (reading stops: the connection is closed)
// and the prefix kept, unless the prefix does not even hold the end of <head> (ErrTooLarge).
func (f *Fetcher) FetchPage(ctx context.Context, u *url.URL) (*Page, error) {
	resp, err := f.get(ctx, u, pageAccept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, ErrUpstreamStatus.WithMessage(fmt.Sprintf("the host answered HTTP %d", resp.StatusCode))
	}
	p := &Page{URL: resp.Request.URL, ContentType: resp.Header.Get("Content-Type")}
	mt, _, _ := mime.ParseMediaType(p.ContentType)
	switch {
	case strings.HasPrefix(mt, "image/"):
		p.Image = true
		return p, nil
	case mt != "" && mt != "text/html" && mt != "application/xhtml+xml":
		return nil, ErrNotHTML.WithMessage(fmt.Sprintf("the url is of type %s, not an HTML page", mt))
	}
	if p.Body, p.Truncated, err = readBody(resp, f.maxBody); err != nil {
		return nil, fmt.Errorf("reading %s: %w", u.Redacted(), err)
	}
	if mt == "" {
		if sniffed := http.DetectContentType(p.Body); !strings.HasPrefix(sniffed, "text/html") {
			return nil, ErrNotHTML.WithMessage("the url is not an HTML page")
		}
		p.ContentType = "text/html"
	}
	if p.Truncated && !headEnds(p.Body) {
		return nil, ErrTooLarge
	}
	return p, nil
}

// headEnds reports whether b contains the end of the document head.
func headEnds(b []byte) bool {
	lower := bytes.ToLower(b)
	return bytes.Contains(lower, []byte("</head")) || bytes.Contains(lower, []byte("<body"))
}

// readBody reads at most max decoded bytes, and at most max+1 raw bytes off the wire: a
// compression bomb stops at the cap like a plain huge page. A corrupt stream is ErrDecode, never
// garbage; a compressed stream cut by the raw cap is only truncated.
func readBody(resp *http.Response, max int64) (body []byte, truncated bool, err error) {
	raw := &countingReader{r: io.LimitReader(resp.Body, max+1)}
	dec, err := decoder(resp.Header.Get("Content-Encoding"), raw)
	if err != nil {
		if raw.err != nil {
			return nil, false, raw.err
		}
		return nil, false, ErrDecode.WithMessage("the page's compressed stream is corrupt or of an unknown encoding")
	}
	body, err = io.ReadAll(io.LimitReader(dec, max+1))
	rawHit := raw.n > max
	switch {
	case err == nil:
	case raw.err != nil:
		return nil, false, raw.err // network trouble or the deadline, not the encoding
	case rawHit:
		// the cap cut the compressed stream mid-way: what was decoded stands
	default:
		return nil, false, ErrDecode.WithMessage("the page's compressed stream is corrupt")
	}
	if int64(len(body)) > max {
		return body[:max], true, nil
	}
	return body, rawHit, nil
}

// countingReader counts bytes and remembers the underlying reader's first real error, so decoder
// errors can be told apart from network ones.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// decoder wraps r in the decoder for a Content-Encoding (gzip, deflate as zlib or raw, br).
func decoder(encoding string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return r, nil
	case "gzip", "x-gzip":
		return gzip.NewReader(r)
	case "deflate":
		// RFC 9110 says zlib; some servers send raw deflate. A zlib stream starts with a CMF byte
		// whose low nibble is 8 and a header checksum divisible by 31.
		br := bufio.NewReader(r)
		if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
			return zlib.NewReader(br)
		}
		return flate.NewReader(br), nil
	case "br":
		return brotli.NewReader(r), nil
	}
	return nil, fmt.Errorf("unknown content encoding %q", encoding)
}
