package scrap

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestRobotsGoogleCases are the cases where our matcher used to allow what Google's reference
// matcher disallows, each with its neighbours in the same class.
func TestRobotsGoogleCases(t *testing.T) {
	const agent = "zkpost-scrap"
	tests := []struct {
		name, robots, path string
		want               bool
	}{
		{"BOM", "\xef\xbb\xbfUser-agent: *\nDisallow: /x\n", "/x", false},
		{"partial BOM", "\xef\xbbUser-agent: *\nDisallow: /x\n", "/x", false},
		{"BOM only once", "\xef\xbb\xbf\xef\xbb\xbfUser-agent: *\nDisallow: /x\n", "/x", true},
		{"non-ASCII rule", "User-agent: *\nDisallow: /café\n", "/caf%C3%A9", false},
		{"non-ASCII rule, prefix", "User-agent: *\nDisallow: /日本\n", "/%E6%97%A5%E6%9C%AC/x", false},
		{"lower-case escape in rule", "User-agent: *\nDisallow: /caf%c3%a9\n", "/caf%C3%A9", false},
		{"non-ASCII rule, other path", "User-agent: *\nDisallow: /café\n", "/cafe", true},
		{"versioned agent", "User-agent: zkpost-scrap/1.0\nDisallow: /x\n", "/x", false},
		{"agent with comment text", "User-agent: zkpost-scrap (our fetcher)\nDisallow: /x\n", "/x", false},
		{"agent prefix only", "User-agent: zkpost-scrapper\nDisallow: /x\n", "/x", true},
		{"star with text", "User-agent: * everyone\nDisallow: /x\n", "/x", false},
		{"CR line ends", "User-agent: *\rDisallow: /x\r", "/x", false},
		{"CRLF line ends", "User-agent: *\r\nDisallow: /x\r\n", "/x", false},
		{"mixed line ends", "User-agent: *\r\rDisallow: /a\n\rDisallow: /x", "/x", false},
		{"missing colon", "User-agent *\nDisallow /x\n", "/x", false},
		{"missing colon, agent", "User-agent zkpost-scrap\nDisallow /x\n", "/x", false},
		{"missing colon, three words", "User-agent: *\nDisallow /x /y\n", "/x", true},
		{"missing colon, tab", "User-agent\t*\nDisallow\t/x\n", "/x", false},
		{"missing colon, vertical tab is no separator", "User-agent: *\nDisallow\v/x\n", "/x", true},
		{"missing colon, form feed is no separator", "User-agent: *\nDisallow\f/x\n", "/x", true},
		{"missing colon, no-break space is no separator", "User-agent: *\nDisallow\u00a0/x\n", "/x", true},
		{"missing colon, agent after vertical tab", "User-agent\v*\nDisallow: /x\n", "/x", true},
		{"missing colon, no-break space inside the value", "User-agent: *\nDisallow /x\u00a0y\n", "/x%C2%A0y", false},
		{"typo useragent", "Useragent: *\nDisallow: /x\n", "/x", false},
		{"typo user agent", "User agent: *\nDisallow: /x\n", "/x", false},
		{"typo dissallow", "User-agent: *\nDissallow: /x\n", "/x", false},
		{"typo dissalow", "User-agent: *\nDissalow: /x\n", "/x", false},
		{"typo disalow", "User-agent: *\nDisalow: /x\n", "/x", false},
		{"typo diasllow", "User-agent: *\nDiasllow: /x\n", "/x", false},
		{"typo disallaw", "User-agent: *\nDisallaw: /x\n", "/x", false},
		{"key case", "USER-AGENT: *\nDISALLOW: /x\n", "/x", false},
		{"unknown key", "User-agent: *\nNoindex: /x\n", "/x", true},
		{"index.html allows the directory", "User-agent: *\nDisallow: /d/\nAllow: /d/index.html\n", "/d/", true},
		{"index.html, not below it", "User-agent: *\nDisallow: /d/\nAllow: /d/index.html\n", "/d/x", false},
		{"sitemap keeps the group", "User-agent: *\nSitemap: https://x/s.xml\nDisallow: /x\n", "/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRobots([]byte(tt.robots), agent).allowed(tt.path); got != tt.want {
				t.Errorf("allowed(%q) under %q: got %v, want %v", tt.path, tt.robots, got, tt.want)
			}
		})
	}
}

// The generated corpus: random robots.txt files as structure (groups of agents and rules), each
// written out in many syntactic styles that Google's parser reads alike, checked against an
// oracle that decides on the structure alone, with the semantics of Google's matcher: the groups
// naming our product (by the product part of the value) else those of "*"; the longest matching
// pattern, percent-encoded, wins; allow wins ties.

type genRule struct {
	allow   bool
	pattern string // as the file's author wrote it (may hold non-ASCII)
}

type genGroup struct {
	agents []string
	rules  []genRule
}

var genAgents = []string{"*", "zkpost-scrap", "ZKPost-Scrap/2.1", "zkpost-scrap (+https://x)", "otherbot", "Googlebot/2.1", "zkpost"}
var genSegments = []string{"a", "b", "café", "日本", "x.php", "index.html", "%7E", "%c3%a9", "q?x=1", "*", ""}

func genPattern(r *rand.Rand) string {
	p := "/"
	for n := r.IntN(3); n >= 0; n-- {
		p += genSegments[r.IntN(len(genSegments))]
		if r.IntN(2) == 0 {
			p += "/"
		}
	}
	if r.IntN(5) == 0 {
		p += "$"
	}
	return p
}

func genFile(r *rand.Rand) []genGroup {
	groups := make([]genGroup, 1+r.IntN(3))
	for i := range groups {
		for n := 1 + r.IntN(2); n > 0; n-- {
			groups[i].agents = append(groups[i].agents, genAgents[r.IntN(len(genAgents))])
		}
		for n := 1 + r.IntN(4); n > 0; n-- {
			groups[i].rules = append(groups[i].rules, genRule{allow: r.IntN(3) == 0, pattern: genPattern(r)})
		}
	}
	return groups
}

// style is one way of writing a file that Google's parser reads the same.
type style struct {
	bom                        bool
	eol, sep                   string
	uaKey, allowKey, disallowK string
	comments, rawNonASCII      bool
}

var genStyles = []style{
	{eol: "\n", sep: ": ", uaKey: "User-agent", allowKey: "Allow", disallowK: "Disallow", rawNonASCII: true},
	{bom: true, eol: "\r\n", sep: ":", uaKey: "user-agent", allowKey: "allow", disallowK: "disallow"},
	{eol: "\r", sep: " :  ", uaKey: "USER-AGENT", allowKey: "ALLOW", disallowK: "DISALLOW", rawNonASCII: true},
	{eol: "\n", sep: " ", uaKey: "User-agent", allowKey: "Allow", disallowK: "Disallow", comments: true},
	{bom: true, eol: "\n", sep: ": ", uaKey: "Useragent", allowKey: "Allow", disallowK: "Dissallow", rawNonASCII: true, comments: true},
	{eol: "\r\n", sep: ":\t", uaKey: "User agent", allowKey: "allow", disallowK: "disalow"},
}

// render writes groups in style st; a line the style cannot write (a missing colon before a
// value with spaces) is written with a colon.
func render(groups []genGroup, st style) string {
	var b strings.Builder
	if st.bom {
		b.WriteString("\xef\xbb\xbf")
	}
	line := func(key, val string) {
		sep := st.sep
		if sep == " " && (val == "" || strings.ContainsAny(val, " \t") || strings.Contains(key, " ")) {
			sep = ": "
		}
		b.WriteString(key + sep + val)
		if st.comments {
			b.WriteString(" # note")
		}
		b.WriteString(st.eol)
	}
	for _, g := range groups {
		for _, a := range g.agents {
			line(st.uaKey, a)
		}
		for _, r := range g.rules {
			p := r.pattern
			if !st.rawNonASCII {
				p = oracleEscape(p)
			}
			if r.allow {
				line(st.allowKey, p)
			} else {
				line(st.disallowK, p)
			}
		}
		b.WriteString(st.eol)
	}
	return b.String()
}

// oracleEscape percent-encodes characters outside ASCII, byte by byte of their UTF-8 form, and
// upper-cases existing escapes.
var escapeRe = regexp.MustCompile(`%[0-9a-fA-F]{2}`)

func oracleEscape(p string) string {
	p = escapeRe.ReplaceAllStringFunc(p, strings.ToUpper)
	var b strings.Builder
	for _, r := range p {
		if r < 0x80 {
			b.WriteRune(r)
			continue
		}
		for _, c := range []byte(string(r)) {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

var oursRe = regexp.MustCompile(`(?i)^zkpost-scrap([^a-z_-]|$)`)

// oracleAllowed decides on the structure.
func oracleAllowed(groups []genGroup, path string) bool {
	var own, star []genRule
	haveOwn := false
	for _, g := range groups {
		mine, all := false, false
		for _, a := range g.agents {
			mine = mine || oursRe.MatchString(a)
			all = all || a == "*"
		}
		if mine {
			own, haveOwn = append(own, g.rules...), true
		}
		if all {
			star = append(star, g.rules...)
		}
	}
	rules := star
	if haveOwn {
		rules = own
	}
	allowLen, disallowLen := -1, -1
	for _, r := range rules {
		p := oracleEscape(r.pattern)
		expr := "^" + strings.ReplaceAll(regexp.QuoteMeta(strings.TrimSuffix(p, "$")), `\*`, ".*")
		if strings.HasSuffix(p, "$") {
			expr += "$"
		}
		if !oracleRegexp(expr).MatchString(path) {
			continue
		}
		if r.allow {
			allowLen = max(allowLen, len(p))
		} else {
			disallowLen = max(disallowLen, len(p))
		}
		if seg := p[strings.LastIndexByte(p, '/'):]; r.allow && strings.HasPrefix(seg, "/index.htm") && path == p[:len(p)-len(seg)+1] {
			allowLen = max(allowLen, len(p)-len(seg)+2)
		}
	}
	return disallowLen <= allowLen
}

var oracleRegexps = map[string]*regexp.Regexp{}

func oracleRegexp(expr string) *regexp.Regexp {
	re, ok := oracleRegexps[expr]
	if !ok {
		re = regexp.MustCompile("(?s)" + expr)
		oracleRegexps[expr] = re
	}
	return re
}

func genPaths(r *rand.Rand, groups []genGroup) []string {
	paths := []string{"/", "/zzz"}
	for _, g := range groups {
		for _, rule := range g.rules {
			p := strings.TrimSuffix(strings.ReplaceAll(oracleEscape(rule.pattern), "*", "q"), "$")
			paths = append(paths, p, p+"x", p+"/y.php")
		}
	}
	for range 4 {
		paths = append(paths, strings.ReplaceAll(oracleEscape(genPattern(r)), "*", "zz"))
	}
	return paths
}

func TestRobotsGeneratedCorpus(t *testing.T) {
	r := rand.New(rand.NewPCG(9309, 2026))
	files, checks := 0, 0
	for range 200 {
		groups := genFile(r)
		paths := genPaths(r, groups)
		for _, st := range genStyles {
			body := render(groups, st)
			files++
			rules := parseRobots([]byte(body), "zkpost-scrap")
			for _, p := range paths {
				checks++
				if got, want := rules.allowed(p), oracleAllowed(groups, p); got != want && p != "/robots.txt" {
					t.Fatalf("allowed(%q) under %q: got %v, want %v", p, body, got, want)
				}
			}
		}
	}
	t.Logf("%d files, %d (file, path) checks", files, checks)
}
