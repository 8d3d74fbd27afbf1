package docs

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the module root: this package lives in <root>/docs.
const repoRoot = ".."

var (
	// outsideDoc matches citations of the original brief, which is not in the repository.
	outsideDoc = regexp.MustCompile(`\bDESIGN\b|\bsemantics? [0-9]`)
	// docCitation matches "docs/<file>.md", optionally followed by "#anchor" or by "§N" (possibly
	// several: "§2, §4" or "§2 and §4").
	docCitation = regexp.MustCompile(`docs/([A-Za-z0-9_.-]+\.md)(#[A-Za-z0-9_-]+)?((?:,? ?(?:and )?§[0-9]+)*)`)
	sectionRef  = regexp.MustCompile(`§([0-9]+)`)
	mdHeading   = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *#*$`)
	mdLink      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	fence       = regexp.MustCompile("(?ms)^```.*?^```")
)

// doc is what a Markdown file offers to citations: its anchors and its § sections.
type doc struct {
	anchors  map[string]bool
	sections map[string]bool
}

func TestGoCommentsCiteExistingDocs(t *testing.T) {
	docs := map[string]*doc{}
	for _, path := range goFiles(t) {
		for _, c := range comments(t, path) {
			rel, _ := filepath.Rel(repoRoot, path)
			checkComment(t, rel, c.pos, c.text, docs)
		}
	}
}

func TestMarkdownLinksResolve(t *testing.T) {
	docs := map[string]*doc{}
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot, "README.md"))
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := fence.ReplaceAllString(string(body), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			checkLink(t, file, m[1], docs)
		}
	}
}

// checkLink checks one relative link of a Markdown file: the file it names exists and, for a
// Markdown target, so does the anchor.
func checkLink(t *testing.T, from, link string, docs map[string]*doc) {
	t.Helper()
	if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
		return
	}
	target, anchor, _ := strings.Cut(link, "#")
	path := from
	if target != "" {
		path = filepath.Join(filepath.Dir(from), target)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s: link %q: %v", from, link, err)
		return
	}
	if anchor == "" || !strings.HasSuffix(path, ".md") {
		return
	}
	if d := load(t, path, docs); d != nil && !d.anchors[anchor] {
		t.Errorf("%s: link %q: no heading with anchor #%s in %s", from, link, anchor, path)
	}
}

// checkComment fails for a citation of a document outside the repository, and for a docs/
// citation whose file, anchor or section does not exist.
func checkComment(t *testing.T, file string, line int, text string, docs map[string]*doc) {
	t.Helper()
	flat := strings.Join(strings.Fields(text), " ")
	if m := outsideDoc.FindString(flat); m != "" {
		t.Errorf("%s:%d: comment cites %q, a document outside the repository; cite docs/ instead "+
			"(docs/failure-semantics.md §N for the numbered semantics)", file, line, m)
	}
	for _, m := range docCitation.FindAllStringSubmatch(flat, -1) {
		path := filepath.Join(repoRoot, "docs", m[1])
		d := load(t, path, docs)
		if d == nil {
			t.Errorf("%s:%d: comment cites docs/%s, which does not exist", file, line, m[1])
			continue
		}
		if a := strings.TrimPrefix(m[2], "#"); a != "" && !d.anchors[a] {
			t.Errorf("%s:%d: comment cites docs/%s#%s: no such heading", file, line, m[1], a)
		}
		for _, s := range sectionRef.FindAllStringSubmatch(m[3], -1) {
			if !d.sections[s[1]] {
				t.Errorf("%s:%d: comment cites docs/%s §%s: no heading starts with §%s",
					file, line, m[1], s[1], s[1])
			}
		}
	}
}

// load reads and indexes a Markdown file once; nil when it does not exist.
func load(t *testing.T, path string, docs map[string]*doc) *doc {
	t.Helper()
	if d, ok := docs[path]; ok {
		return d
	}
	body, err := os.ReadFile(path)
	if err != nil {
		docs[path] = nil
		return nil
	}
	d := &doc{anchors: map[string]bool{}, sections: map[string]bool{}}
	seen := map[string]int{}
	for _, m := range mdHeading.FindAllStringSubmatch(fence.ReplaceAllString(string(body), ""), -1) {
		a := anchor(m[1])
		if n := seen[a]; n > 0 {
			d.anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			d.anchors[a] = true
		}
		seen[a]++
		if s := sectionRef.FindStringSubmatch(m[1]); s != nil && strings.HasPrefix(m[1], "§") {
			d.sections[s[1]] = true
		}
	}
	docs[path] = d
	return d
}

// anchor is GitHub's heading anchor: lower case, punctuation dropped, spaces as dashes.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// goFiles lists the module's .go files, skipping testdata and hidden or generated directories.
func goFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != repoRoot &&
			(strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found %d .go files under %s; the walk is broken", len(files), repoRoot)
	}
	return files
}

type comment struct {
	pos  int
	text string
}

// comments returns the comment groups of a Go file, each with its first line.
func comments(t *testing.T, path string) []comment {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	var out []comment
	for _, g := range f.Comments {
		out = append(out, comment{pos: fset.Position(g.Pos()).Line, text: g.Text()})
	}
	return out
}

// TestOnlyFailureSemanticsIsNumbered keeps "§N" meaning one thing: the numbered guarantees of
// failure-semantics.md, which must run §1, §2, … without a gap.
func TestOnlyFailureSemanticsIsNumbered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]*doc{}
	for _, file := range files {
		d := load(t, file, docs)
		if filepath.Base(file) == "failure-semantics.md" {
			if len(d.sections) == 0 {
				t.Errorf("%s: no §N headings", file)
			}
			for n := 1; n <= len(d.sections); n++ {
				if !d.sections[strconv.Itoa(n)] {
					t.Errorf("%s: §%d missing among %d numbered sections", file, n, len(d.sections))
				}
			}
			continue
		}
		if len(d.sections) > 0 {
			t.Errorf("%s: has §N headings; only failure-semantics.md numbers its sections", file)
		}
	}
}
