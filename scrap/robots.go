package scrap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// robots.txt per RFC 9309.
//
// github.com/temoto/robotstxt v1.1.2 (pinned in go.mod) was read and not used: its status rules
// match RFC 9309 for 2xx/4xx/5xx but it errors on 3xx; its rule matching breaks ties in favour of
// the first rule listed, where RFC 9309 §2.2.2 says allow wins, and it measures a wildcard rule by
// the length of its compiled regexp rather than of the pattern; and one malformed line makes it
// reject the whole file, where the RFC says to use the valid rules. The matcher below is short and
// follows the RFC: the groups naming our product token (else those of "*") merged, the longest
// matching pattern wins, allow wins ties, "*" and a final "$" are the only special characters.
// Status rules: 2xx parse; 3xx left after 5 redirects, or too many, and 4xx mean allow all; 5xx
// and an unreachable server mean disallow all, cached for the short negative TTL only.

// robotsMaxBytes is how much of a robots.txt is parsed (RFC 9309 §2.5: at least 500 KiB).
const robotsMaxBytes = 512 << 10

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

// parseRobots returns the rules of body that apply to the product token agent.
func parseRobots(body []byte, agent string) *robotsRules {
	agent = strings.ToLower(agent)
	var own, star []robotsRule
	var haveOwn, haveStar bool
	var groupOwn, groupStar, inAgents bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), robotsMaxBytes)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
		switch key {
		case "user-agent":
			if !inAgents {
				groupOwn, groupStar, inAgents = false, false, true
			}
			switch strings.ToLower(val) {
			case agent:
				groupOwn, haveOwn = true, true
			case "*":
				groupStar, haveStar = true, true
			}
		case "allow", "disallow":
			inAgents = false
			if val == "" || len(val) > MaxURLLength+1 {
				continue // an empty rule matches nothing; a longer one than any URL we fetch neither
			}
			r := robotsRule{allow: key == "allow", pattern: val}
			if groupOwn {
				own = append(own, r)
			}
			if groupStar {
				star = append(star, r)
			}
		default:
			// sitemap, crawl-delay and unknown records neither end a group nor start one
		}
	}
	switch {
	case haveOwn:
		return &robotsRules{rules: own}
	case haveStar:
		return &robotsRules{rules: star}
	}
	return allowAllRobots
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
