package scrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sync/singleflight"
)

// robots.txt per RFC 9309, read the way Google's reference parser (google/robotstxt) reads it, so
// a site's file means to us what it means to the crawler its authors test against:
//   - a UTF-8 byte order mark before the first line is skipped; lines end at LF, CR or CRLF;
//   - "#" starts a comment; a key and its value are split at ":", or, when a line has no colon,
//     at the spaces and tabs between exactly two words ("Disallow /x"; other whitespace, such
//     as "\v" or a no-break space, separates nothing);
//   - keys match by prefix, case-insensitively, with Google's accepted typos ("useragent",
//     "user agent", "dissallow", "disalow", ...); other keys (sitemap, crawl-delay) are ignored
//     and neither start nor end a group;
//   - a User-agent value names a product by its leading letters, "-" and "_" ("zkpost-scrap/1.0"
//     names zkpost-scrap); "*", alone or followed by a space, is every crawler;
//   - rule values are percent-encoded before comparing (RFC 9309 §2.2.2): bytes outside ASCII
//     become %XX and existing escapes are upper-cased, as a URL's path is written;
//   - the groups naming our product apply (all of them, merged), else those of "*"; the longest
//     matching pattern wins and allow wins a tie; "*" matches any run and a final "$" anchors.
//
// TestRobotsMatchesGoogle holds this to Google's verdicts over a generated corpus; the two
// deliberate differences (/robots.txt always allowed; escapes upper-cased as Google's C++ does,
// not as its Go port does) are in docs/api.md#scrapd.
//
// Status rules stay RFC 9309's: 2xx parse; 3xx left after 5 redirects, or too many, and 4xx mean
// allow all; 5xx and an unreachable server mean disallow all, cached for the short negative TTL
// only. /robots.txt itself is always allowed (§2.2).

// robotsMaxBytes is how much of a robots.txt is parsed (RFC 9309 §2.5: at least 500 KiB).
const robotsMaxBytes = 512 << 10

// robotsMaxLine is the longest line read; the rest of a longer line is ignored, as Google's
// parser does (8 × the 2083-byte URL bound of old browsers).
const robotsMaxLine = 2083*8 - 1

type robotsRule struct {
	allow   bool
	pattern string
}

// robotsRules are the rules of the groups that apply to one product token.
type robotsRules struct {
	disallowAll bool
	rules       []robotsRule
}

var allowAllRobots = &robotsRules{}

// robotsGroups collects the rules for one product token while the lines are read.
type robotsGroups struct {
	agent              string
	escape             func(rule string) string // escapeRobotsPattern; tests model other matchers
	own, star          []robotsRule
	haveOwn, haveStar  bool
	groupOwn, groupAll bool // the current group names us / every crawler
	inRules            bool // a rule has been read since the last User-agent line
}

// parseRobots returns the rules of body that apply to the product token agent.
func parseRobots(body []byte, agent string) *robotsRules {
	return (&robotsGroups{agent: agent, escape: escapeRobotsPattern}).parse(body)
}

// parse reads body's lines and returns the rules that apply to g.agent.
func (g *robotsGroups) parse(body []byte) *robotsRules {
	forEachRobotsLine(body, g.line)
	switch {
	case g.haveOwn:
		return &robotsRules{rules: g.own}
	case g.haveStar:
		return &robotsRules{rules: g.star}
	}
	return allowAllRobots
}

// forEachRobotsLine calls f with each line of body: a leading byte order mark (or a prefix of
// one) skipped, lines ended by LF, CR or CRLF, each cut to robotsMaxLine bytes.
func forEachRobotsLine(body []byte, f func(line []byte)) {
	bom := []byte{0xef, 0xbb, 0xbf}
	for i := 0; i < len(bom) && len(body) > 0 && body[0] == bom[i]; i++ {
		body = body[1:]
	}
	for len(body) > 0 {
		end := bytes.IndexAny(body, "\r\n")
		if end < 0 {
			end = len(body)
		}
		f(body[:min(end, robotsMaxLine)])
		if end < len(body) && body[end] == '\r' && end+1 < len(body) && body[end+1] == '\n' {
			end++
		}
		body = body[min(end+1, len(body)):]
	}
}

// line applies one line to the groups.
func (g *robotsGroups) line(raw []byte) {
	key, val, ok := robotsKeyValue(raw)
	if !ok {
		return
	}
	switch robotsKey(key) {
	case "user-agent":
		g.userAgent(val)
	case "allow":
		g.rule(true, val)
	case "disallow":
		g.rule(false, val)
	}
}

// robotsKeyValue splits a line into key and value: at the colon, or, without one, at the
// spaces and tabs between exactly two words (only those: "Disallow\v/x" is not a rule).
func robotsKeyValue(raw []byte) (key, val string, ok bool) {
	line, _, _ := bytes.Cut(raw, []byte("#"))
	text := strings.TrimSpace(string(line))
	key, val, ok = strings.Cut(text, ":")
	if !ok {
		i := strings.IndexAny(text, " \t")
		if i < 0 || strings.ContainsAny(strings.TrimSpace(text[i:]), " \t") {
			return "", "", false
		}
		key, val = text[:i], text[i+1:]
	}
	key = strings.TrimSpace(key)
	return key, strings.TrimSpace(val), key != ""
}

// robotsKey names the directive key stands for, by prefix and with the typos Google accepts.
func robotsKey(key string) string {
	k := strings.ToLower(key)
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
		return false
	}
	switch {
	case has("user-agent", "useragent", "user agent"):
		return "user-agent"
	case has("allow"):
		return "allow"
	case has("disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"):
		return "disallow"
	}
	return ""
}

func (g *robotsGroups) userAgent(val string) {
	if g.inRules { // a User-agent line after rules starts a new group
		g.groupOwn, g.groupAll, g.inRules = false, false, false
	}
	if val == "*" || (strings.HasPrefix(val, "*") && unicode.IsSpace(rune(val[1]))) {
		g.groupAll, g.haveStar = true, true
		return
	}
	if strings.EqualFold(robotsProduct(val), g.agent) {
		g.groupOwn, g.haveOwn = true, true
	}
}

// robotsProduct returns the product name a User-agent value starts with: its leading ASCII
// letters, "-" and "_".
func robotsProduct(val string) string {
	i := 0
	for i < len(val) && (val[i] == '-' || val[i] == '_' || ('a' <= val[i]|0x20 && val[i]|0x20 <= 'z')) {
		i++
	}
	return val[:i]
}

func (g *robotsGroups) rule(allow bool, val string) {
	if !g.groupOwn && !g.groupAll {
		return // rules before any User-agent line, or of other crawlers' groups
	}
	g.inRules = true
	if val == "" {
		return // an empty rule matches nothing
	}
	rules := []robotsRule{{allow: allow, pattern: g.escape(val)}}
	// Google's parser takes "Allow: /dir/index.htm(l)" to allow "/dir/" too.
	if slash := strings.LastIndexByte(rules[0].pattern, '/'); allow && slash >= 0 &&
		strings.HasPrefix(rules[0].pattern[slash:], "/index.htm") {
		rules = append(rules, robotsRule{allow: true, pattern: rules[0].pattern[:slash+1] + "$"})
	}
	if g.groupOwn {
		g.own = append(g.own, rules...)
	}
	if g.groupAll {
		g.star = append(g.star, rules...)
	}
}

// escapeRobotsPattern writes a rule as a URL path is written: bytes outside ASCII as %XX, and
// the hex digits of existing escapes in upper case.
func escapeRobotsPattern(p string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
			i += 2
		case c >= 0x80:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
}

// allowed reports whether path (the URL's escaped path and query) may be fetched.
func (r *robotsRules) allowed(path string) bool {
	if r.disallowAll {
		return false
	}
	if path == "/robots.txt" {
		return true
	}
	best, allow := -1, true
	for _, rule := range r.rules {
		if !robotsMatch(rule.pattern, path) {
			continue
		}
		if n := len(rule.pattern); n > best || (n == best && rule.allow) {
			best, allow = n, rule.allow
		}
	}
	return allow
}

// robotsMatch matches a rule pattern against a path: a prefix match where "*" matches any run of
// characters and a final "$" anchors the end.
func robotsMatch(pattern, path string) bool {
	if p, ok := strings.CutSuffix(pattern, "$"); ok {
		pattern = p
	} else {
		pattern += "*"
	}
	return glob(pattern, path)
}

// glob matches s against p where '*' matches any run of bytes; linear backtracking on the last star.
func glob(p, s string) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// robotsChecker answers whether a URL may be fetched, fetching and caching each origin's
// robots.txt through the guarded fetcher.
type robotsChecker struct {
	f      *Fetcher
	agent  string
	ttl    time.Duration // for 2xx and 4xx answers
	errTTL time.Duration // for 5xx and unreachable: retried soon
	cache  *ttlCache[robotsResult]
	flight singleflight.Group
}

type robotsResult struct {
	rules *robotsRules
	err   error // a network error fetching robots.txt: the origin is unreachable
}

// productToken returns the product token of a User-Agent ("zkpost-scrap/1.0 (+…)" → "zkpost-scrap").
func productToken(ua string) string {
	tok, _, _ := strings.Cut(strings.TrimSpace(ua), " ")
	tok, _, _ = strings.Cut(tok, "/")
	return tok
}

// Check returns nil if u may be fetched, ErrRobotsDisallowed if robots.txt forbids it, or the
// error that made robots.txt unreachable (an unreachable origin is disallowed, RFC 9309 §2.3.1.4,
// and the error says better why than "disallowed" would).
func (c *robotsChecker) Check(ctx context.Context, u *url.URL) error {
	origin := u.Scheme + "://" + u.Host
	res, ok := c.cache.Get(origin)
	if !ok {
		ch := c.flight.DoChan(origin, func() (any, error) {
			r := c.fetch(ctx, origin)
			ttl := c.ttl
			if r.err != nil || r.rules.disallowAll {
				ttl = c.errTTL
			}
			if ctx.Err() == nil { // a fetch cut short by this caller's deadline says nothing of the origin
				c.cache.Put(origin, r, ttl)
			}
			return r, nil
		})
		select {
		case v := <-ch:
			res = v.Val.(robotsResult)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if res.err != nil {
		return res.err
	}
	path := u.EscapedPath()
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	if !res.rules.allowed(path) {
		return ErrRobotsDisallowed
	}
	return nil
}

func (c *robotsChecker) fetch(ctx context.Context, origin string) robotsResult {
	u, err := url.Parse(origin + "/robots.txt")
	if err != nil {
		return robotsResult{err: ErrInvalidURL}
	}
	resp, err := c.f.get(withoutHopCheck(ctx), u, "text/plain,*/*;q=0.5")
	if errors.Is(err, errTooManyRedirects) {
		return robotsResult{rules: allowAllRobots} // RFC 9309 §2.3.1.2: may be taken as unavailable
	}
	if err != nil {
		return robotsResult{err: fmt.Errorf("robots.txt: %w", err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return robotsResult{rules: &robotsRules{disallowAll: true}}
	case resp.StatusCode >= 300:
		return robotsResult{rules: allowAllRobots}
	}
	body, _, err := readBody(resp, robotsMaxBytes)
	if err != nil {
		return robotsResult{err: fmt.Errorf("robots.txt: %w", err)}
	}
	return robotsResult{rules: parseRobots(body, c.agent)}
}
