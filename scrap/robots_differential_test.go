package scrap

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// robotsVerdictsFile holds Google's matcher's verdicts for robotsDiffCorpus, produced out of
// tree (docs/tests.md#robotstxt-against-googles-matcher).
var robotsVerdictsFile = flag.String("robots.verdicts", "testdata/robots-google-verdicts.txt.gz",
	"Google's verdicts for the robots.txt corpus (gzip)")

// robotsVerdicts maps a corpus file's key to its verdicts: 'A' or 'D' per (path, agent).
func robotsVerdicts(tb testing.TB) (keys []string, verdicts map[string]string) {
	tb.Helper()
	f, err := os.Open(*robotsVerdictsFile)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatalf("%s: %v", *robotsVerdictsFile, err)
	}
	verdicts = map[string]string{}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			key, v, _ := strings.Cut(line, " ")
			keys, verdicts[key] = append(keys, key), v
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("%s: %v", *robotsVerdictsFile, err)
	}
	return keys, verdicts
}

// grobotstxtEscape is escapeRobotsPattern as the Go port writes it: when a value needs any
// change (a lower-case escape, a byte outside ASCII), the two hex digits of every escape are
// ANDed with 0xDF, which upper-cases letters and turns digits into control bytes.
func grobotstxtEscape(p string) string {
	escape := func(i int) bool { return p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) }
	change := false
	for i := 0; i < len(p); i++ {
		change = change || (escape(i) && (isLowerHex(p[i+1]) || isLowerHex(p[i+2]))) || (!escape(i) && p[i] >= 0x80)
	}
	if !change {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case escape(i):
			b.Write([]byte{'%', p[i+1] & 0xdf, p[i+2] & 0xdf})
			i += 2
		case p[i] >= 0x80:
			fmt.Fprintf(&b, "%%%02X", p[i])
		default:
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

func isLowerHex(c byte) bool { return 'a' <= c && c <= 'f' }

// robotsDifferences are the deliberate differences from Google's matcher (in its Go port),
// documented in docs/api.md#scrapd; TestRobotsMatchesGoogle fails if one is never seen.
var robotsDifferences = []string{robotsTxtAllowed, portEscapeBug}

const (
	robotsTxtAllowed = "/robots.txt is always allowed"
	portEscapeBug    = "the Go port's escape upper-casing breaks digits"
)

// robotsTally counts the outcome of the differential comparison.
type robotsTally struct {
	questions, unexplained, modelMisses int
	expected                            map[string]int
}

// TestRobotsMatchesGoogle runs our matcher on every question of the differential corpus and
// compares its verdict with Google's matcher's, except where a documented deliberate difference
// explains it. It also runs our matcher with the Go port's escaping, which must then agree with
// the port on every question but /robots.txt: so the escape explanation hides nothing else.
func TestRobotsMatchesGoogle(t *testing.T) {
	files := robotsDiffCorpus()
	keys, verdicts := robotsVerdicts(t)
	if len(keys) != len(files) {
		t.Fatalf("%s has %d files, the corpus %d: regenerate it (docs/tests.md)", *robotsVerdictsFile, len(keys), len(files))
	}
	tally := &robotsTally{expected: map[string]int{}}
	for i, f := range files {
		v, ok := verdicts[f.Key]
		if !ok || keys[i] != f.Key || len(v) != len(f.Paths)*len(f.Agents) {
			t.Fatalf("file %d (key %s) is not the one the verdicts were made for: regenerate them (docs/tests.md)", i, f.Key)
		}
		for ai, agent := range f.Agents {
			google := func(pi int) bool { return v[pi*len(f.Agents)+ai] == 'A' }
			tally.compare(t, f, agent, google)
		}
	}
	t.Logf("%d files, %d questions, %d unexplained disagreements, expected differences: %v",
		len(files), tally.questions, tally.unexplained, tally.expected)
	if tally.unexplained > 0 || tally.modelMisses > 0 {
		t.Errorf("%d unexplained disagreements with Google's matcher; with the port's escaping, %d", tally.unexplained, tally.modelMisses)
	}
	for _, why := range robotsDifferences {
		if tally.expected[why] == 0 {
			t.Errorf("expected difference %q never seen: the corpus no longer exercises it", why)
		}
	}
}

// compare asks our matcher, and our matcher with the port's escaping, about every path of f.
func (tally *robotsTally) compare(t *testing.T, f robotsDiffFile, agent string, google func(pi int) bool) {
	t.Helper()
	rules := parseRobots(f.Body, agent)
	model := (&robotsGroups{agent: agent, escape: grobotstxtEscape}).parse(f.Body)
	for pi, path := range f.Paths {
		tally.questions++
		ours, theirs := rules.allowed(path), google(pi)
		if model.allowed(path) != theirs && path != "/robots.txt" {
			if tally.modelMisses++; tally.modelMisses <= 5 {
				t.Errorf("with the port's escaping: robots.txt %q, path %q, agent %q: ours allowed=%v, Google's allowed=%v",
					f.Body, path, agent, model.allowed(path), theirs)
			}
		}
		if ours == theirs {
			continue
		}
		switch {
		case path == "/robots.txt" && ours:
			tally.expected[robotsTxtAllowed]++ // RFC 9309 §2.2.2: implicitly allowed
		case model.allowed(path) == theirs:
			tally.expected[portEscapeBug]++
		default:
			if tally.unexplained++; tally.unexplained <= 20 {
				t.Errorf("robots.txt %q, path %q, agent %q: ours allowed=%v, Google's allowed=%v", f.Body, path, agent, ours, theirs)
			}
		}
	}
}
