package scrap

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// The differential corpus: robots.txt files with the paths and product tokens to ask about, the
// same on every run (fixed seeds), compared with the verdicts of Google's matcher in
// testdata/robots-google-verdicts.txt.gz (docs/tests.md#robotstxt-against-googles-matcher).
// It holds four kinds of file: hand-written ones for each class of input the issue found
// (BOM, non-ASCII rules, versioned agents, CR line ends, missing colons, typos); the structural
// corpus of robots_google_test.go written in its six styles; byte-level mixes of real and
// near-miss keys, odd separators and whitespace, wildcards, "$", escapes and line ends; and
// the hand-written files with a few bytes inserted, replaced or deleted.

var (
	robotsCasesOut = flag.String("robots.cases", "", "write the robots.txt differential corpus as JSON lines to this file")
	// A corpus with other mixes needs its own verdicts (-robots.verdicts): for exploring.
	robotsMixSeed = flag.Uint64("robots.seed", 3, "seed of the robots.txt corpus's mixed files")
	robotsMixes   = flag.Int("robots.mixes", 600, "number of mixed files in the robots.txt corpus")
)

// robotsDiffAgents are the product tokens every file is asked about.
var robotsDiffAgents = []string{"zkpost-scrap", "Googlebot", "FooBot", "zkpost"}

// robotsDiffFile is one robots.txt of the corpus with the paths to ask about.
type robotsDiffFile struct {
	Key    string   `json:"key"` // names the file and its questions in the verdicts file
	Body   []byte   `json:"body"`
	Paths  []string `json:"paths"`
	Agents []string `json:"agents"`
}

// robotsDiffSeeds are written by hand: each class of input the issue found, with neighbours.
var robotsDiffSeeds = []string{
	"\xef\xbb\xbfUser-agent: *\nDisallow: /x\n",
	"\xef\xbb\xbfuser-agent: zkpost-scrap\r\ndisallow: /\r\nallow: /ok\r\n",
	"\xef\xbbUser-agent: *\nDisallow: /x\n",
	"\xefUser-agent: *\nDisallow: /x\n",
	"\xef\xbb\xbf\xef\xbb\xbfUser-agent: *\nDisallow: /x\n",
	"\xbb\xbfUser-agent: *\nDisallow: /x\n",
	"\xef\xbb\xbf\nUser-agent: *\nDisallow: /x\n",
	"User-agent: *\nDisallow: /café\nDisallow: /日本/\nAllow: /日本/公開\n",
	"User-agent: *\nDisallow: /caf%c3%a9\nDisallow: /%7e\nDisallow: /A%2fb\n",
	"User-agent: *\nDisallow: /café/%7e\nDisallow: /ü/%2F\n",
	"User-agent: *\nDisallow: /\xff\xfe\nAllow: /\xc3\n",
	"User-agent: *\nDisallow: /naïve*$\n",
	"User-agent: zkpost-scrap/1.0\nDisallow: /x\n",
	"User-agent: ZKPost-Scrap/2.3 (+https://example.com/bot)\nDisallow: /\n",
	"User-agent: zkpost-scrap (our fetcher)\nDisallow: /x\n",
	"User-agent: zkpost-scrapper\nDisallow: /x\n",
	"User-agent: zkpost_scrap\nDisallow: /x\n",
	"User-agent: zkpost scrap\nDisallow: /x\n",
	"User-agent: Googlebot/2.1\nUser-agent: FooBot/1.0\nDisallow: /g\n",
	"User-agent: * everyone\nDisallow: /x\n",
	"User-agent: *bot\nDisallow: /x\n",
	"User-agent: *\tall\nDisallow: /x\n",
	"User-agent: *\rDisallow: /x\r",
	"User-agent: *\r\rDisallow: /a\n\rDisallow: /x",
	"User-agent: zkpost-scrap\rDisallow: /p\r\rUser-agent: *\rDisallow: /\r",
	"User-agent: *\n\rDisallow: /x\n\r",
	"User-agent: *\r\n\r\nDisallow: /x\r\n",
	"User-agent *\nDisallow /x\n",
	"User-agent zkpost-scrap\nDisallow /x\nAllow /x/y\n",
	"User-agent\t*\nDisallow\t/x\n",
	"User-agent: *\nDisallow /x /y\n",
	"User-agent *\nDisallow  /x\n",
	"User-agent:*\nDisallow:/x\n",
	"Useragent: *\nDisallow: /x\n",
	"User agent: *\nDisallow: /x\n",
	"User-agents: *\nDisallows: /x\n",
	"User_agent: *\nDisallow: /x\n",
	"User-agent: *\nDissallow: /a\nDissalow: /b\nDisalow: /c\nDiasllow: /d\nDisallaw: /e\n",
	"User-agent: *\nDisalloww: /f\nDis-allow: /g\nAlow: /h\nAllowed: /i\n",
	"USER-AGENT: *\nDISALLOW: /x\nALLOW: /x/y\n",
	"User-agent: *\nNoindex: /x\nCrawl-delay: 10\nSitemap: https://x/s.xml\nDisallow: /y\n",
	"User-agent: *\nDisallow: /d/\nAllow: /d/index.html\nAllow: /e/index.htm\n",
	"Disallow: /\nUser-agent: *\nAllow: /\n",
	"User-agent: *\n\nUser-agent: zkpost-scrap\nDisallow: /x\n",
	"User-agent: zkpost-scrap\n\n\nUser-agent: *\nDisallow: /x\n",
	"User-agent: zkpost-scrap\nAllow: /\nUser-agent: Googlebot\nDisallow: /\n",
	"User-agent: zkpost-scrap\nDisallow:\n\nUser-agent: *\nDisallow: /\n",
	"User-agent: *\nDisallow: /a\nAllow: /a\nDisallow: /b*\nAllow: /b$\n",
	"User-agent: *\nDisallow: /*.php$\nAllow: /*.php?\nDisallow: /a$b\n",
	"User-agent: *\nDisallow: /\nAllow: /$\n",
	"user-agent: FooBot\ndisallow: /\nallow: /x/\nuser-agent: BarBot\ndisallow: /\nallow: /y/\n",
	"User-agent: *\nDisallow: /robots.txt\nDisallow: /\n",
	"User-agent: *\nDisallow: /x # comment\n# User-agent: zkpost-scrap\nDisallow: /y\n",
	"  User-agent: *  \n\tDisallow:   /x   \n",
	"User-agent: *\nDisallow: /x\u00a0/y\nDisallow /p\u00a0q\n",
	"User-agent: *\x0bDisallow: /x\nDisallow\x0c/y\n",
	"",
	"\n\n\n",
	"User-agent: *\nDisallow: /" + strings.Repeat("a", robotsMaxLine+10) + "\nDisallow: /b\n",
}

// robotsDiffCorpus builds the corpus; the same on every run.
func robotsDiffCorpus() []robotsDiffFile {
	var files []robotsDiffFile
	r := rand.New(rand.NewPCG(9309, 1))
	for _, body := range robotsDiffSeeds {
		files = append(files, newDiffFile([]byte(body), pathsFromBody(r, []byte(body))))
	}
	r = rand.New(rand.NewPCG(9309, 2026)) // the structural corpus of TestRobotsGeneratedCorpus
	for range 200 {
		groups := genFile(r)
		paths := append(genPaths(r, groups), "/robots.txt")
		for _, st := range genStyles {
			files = append(files, newDiffFile([]byte(render(groups, st)), paths))
		}
	}
	r = rand.New(rand.NewPCG(9309, *robotsMixSeed))
	for range *robotsMixes {
		body := genMixedBody(r)
		files = append(files, newDiffFile(body, pathsFromBody(r, body)))
	}
	for range *robotsMixes / 3 {
		body := mutate(r, []byte(pick(r, robotsDiffSeeds)))
		files = append(files, newDiffFile(body, pathsFromBody(r, body)))
	}
	return files
}

// mutate inserts, replaces or deletes one to four bytes of body, drawn from those that matter
// to a robots.txt parser.
func mutate(r *rand.Rand, body []byte) []byte {
	const alphabet = "\x00\x85\xa0\xc2\r\n\v\f \t:#*$%/?\xef\xbb\xbfaZ-_"
	for n := 1 + r.IntN(4); n > 0; n-- {
		i, c := r.IntN(len(body)+1), alphabet[r.IntN(len(alphabet))]
		switch op := r.IntN(3); {
		case op == 0 || i == len(body):
			body = slices.Insert(body, i, c)
		case op == 1:
			body[i] = c
		default:
			body = slices.Delete(body, i, i+1)
		}
	}
	return body
}

func newDiffFile(body []byte, paths []string) robotsDiffFile {
	f := robotsDiffFile{Body: body, Paths: canonicalPaths(paths), Agents: robotsDiffAgents}
	j, _ := json.Marshal(f)
	sum := sha256.Sum256(j)
	f.Key = hex.EncodeToString(sum[:8])
	return f
}

// canonicalPaths returns paths written canonically, each once.
func canonicalPaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p = canonicalPath(p); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// canonicalPath writes p as a URL's escaped path and query are written, so that a URL parser
// leaves it as it is: a leading "/", and bytes outside the path alphabet as %XX.
func canonicalPath(p string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	if !strings.HasPrefix(p, "/") {
		b.WriteByte('/')
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			b.WriteByte(c)
		case c > ' ' && c < 0x7f && !strings.ContainsRune("%#\"<>\\^`{|}", rune(c)):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
	return b.String()
}

// pathsFromBody returns paths near every rule value of body: the value percent-encoded, its
// wildcards filled, with and without the "$", extended, and cut at the first wildcard.
func pathsFromBody(r *rand.Rand, body []byte) []string {
	paths := []string{"/", "/robots.txt", "/zzz"}
	for _, v := range ruleValues(body) {
		p := strings.TrimSuffix(escapeRobotsPattern(v), "$")
		fill := []string{"", "x", "x/y.php"}[r.IntN(3)]
		full := strings.ReplaceAll(p, "*", fill)
		paths = append(paths, full, full+"x", full+"/", full+".php?q=1")
		if i := strings.IndexByte(p, '*'); i >= 0 {
			paths = append(paths, p[:i])
		}
		if strings.Contains(full, "%") {
			paths = append(paths, strings.ToLower(full))
		}
	}
	if len(paths) > 28 {
		r.Shuffle(len(paths)-3, func(i, j int) { paths[i+3], paths[j+3] = paths[j+3], paths[i+3] })
		paths = paths[:28]
	}
	return paths
}

// ruleValues returns what follows the key of each line that looks like a path rule.
func ruleValues(body []byte) []string {
	var vals []string
	for _, line := range strings.FieldsFunc(string(body), func(c rune) bool { return c == '\n' || c == '\r' }) {
		line, _, _ = strings.Cut(line, "#")
		i := strings.IndexAny(line, ": \t")
		if i < 0 {
			continue
		}
		v := strings.TrimLeft(strings.TrimSpace(line[i+1:]), ": \t")
		if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "*") {
			vals = append(vals, strings.Fields(v + " ")[0])
		}
	}
	return vals
}

// Fragments of the mixed files: keys right, wrong and nearly right; separators; values.
var (
	mixUAKeys    = []string{"User-agent", "user-agent", "USER-AGENT", "User-Agent", "useragent", "User agent", "User-agents", "user_agent", "Usr-agent", "User-agent-x"}
	mixRuleKeys  = []string{"Allow", "allow", "ALLOW", "Allowed", "Alow", "Disallow", "disallow", "DISALLOW", "Dissallow", "Dissalow", "Disalow", "Diasllow", "Disallaw", "Disallows", "Dis-allow", "Disalloww"}
	mixOtherKeys = []string{"Sitemap", "Crawl-delay", "Noindex", "Host", "Site-map", "Clean-param", ""}
	mixSeps      = []string{":", ": ", " : ", ":\t", "\t:", " ", "\t", "  ", " \t ", "\v", "\f", "\u00a0", "::", ": :", ""}
	mixAgents    = []string{"*", "* ", "*bot", "* extra", "*\tx", "*\u00a0x", "zkpost-scrap", "ZKPOST-SCRAP", "zkpost-scrap/1.0", "zkpost-scrap/2 (+http://x)", "zkpost_scrap", "zkpost", "zkpost-scrapper", "Googlebot", "Googlebot-Image/1.0", "googlebot news", "FooBot", "foobot/1.1", "", "zkpost-scrap*", "Foo Bar", "-zkpost-scrap"}
	mixValues    = []string{"", "/", "*", "/*", "$", "/$", "/*.php$", "/a$b", "/a*b*c", "/%7e", "/%7E", "/%c3%a9", "/é", "/日本", "/\xff", "/a b", "/a?x=1", "/a?x=*", "/index.html", "/d/index.htm", "/d/index.html?x", "*.gif", "/a/", "/A/", "/a%2f", "/a%2F", "/%zz", "/%", "/%e", "/~x", "/a;b", "/a%20b", "/café/%7e", "/%C3%A9%7e", "/b", "/b/c", "/a", "a", "/**", "/*$", "/a/*/b$"}
	mixEOLs      = []string{"\n", "\r", "\r\n", "\n\r"}
	mixIndents   = []string{"", "", "", " ", "\t", "  "}
	mixComments  = []string{"", "", "", " # c", "#", "# x: y", "\t#x", "#/z"}
	mixJunk      = []string{"", " ", "\t", "# only a comment", "foo bar baz", "nocolon", ":/x", "  : ", "\u00a0", "\x00", "Disallow", "User-agent"}
	mixBOMs      = []string{"", "", "", "", "\xef\xbb\xbf", "\xef\xbb", "\xef", "\xef\xbb\xbf\xef\xbb\xbf"}
)

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

// genMixedBody writes a file of 3 to 16 lines, mostly User-agent and rule lines.
func genMixedBody(r *rand.Rand) []byte {
	var b strings.Builder
	b.WriteString(pick(r, mixBOMs))
	eol := pick(r, mixEOLs)
	for n := 3 + r.IntN(14); n > 0; n-- {
		b.WriteString(genMixedLine(r))
		if r.IntN(8) == 0 {
			b.WriteString(pick(r, mixEOLs))
		} else {
			b.WriteString(eol)
		}
	}
	return []byte(b.String())
}

func genMixedLine(r *rand.Rand) string {
	var key, val string
	switch k := r.IntN(20); {
	case k < 6:
		key, val = pick(r, mixUAKeys), pick(r, mixAgents)
	case k < 17:
		key, val = pick(r, mixRuleKeys), pick(r, mixValues)
		if r.IntN(4) == 0 {
			val = genPattern(r)
		}
	case k < 18:
		key, val = pick(r, mixOtherKeys), pick(r, mixValues)
	default:
		return pick(r, mixJunk)
	}
	return pick(r, mixIndents) + key + pick(r, mixSeps) + val + pick(r, mixComments)
}

// TestMain writes the corpus for the out-of-tree program that asks Google's matcher, instead of
// running the tests, when -robots.cases is set
// (docs/tests.md#robotstxt-against-googles-matcher): go test ./scrap/ -robots.cases=FILE.
func TestMain(m *testing.M) {
	flag.Parse()
	if *robotsCasesOut == "" {
		os.Exit(m.Run())
	}
	n, err := writeRobotsCases(*robotsCasesOut)
	if err != nil {
		fmt.Fprintln(os.Stderr, "writing the robots.txt corpus:", err)
		os.Exit(1)
	}
	fmt.Printf("%d files written to %s\n", n, *robotsCasesOut)
	os.Exit(0)
}

// writeRobotsCases writes robotsDiffCorpus to path as JSON lines and returns how many files.
func writeRobotsCases(path string) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	files := robotsDiffCorpus()
	for _, c := range files {
		if err := enc.Encode(c); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return len(files), f.Close()
}
