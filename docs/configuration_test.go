package docs

import (
	"bufio"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// binaries are the commands configuration.md documents, by package.
var binaries = map[string]string{
	"guidd":      "./guid/cmd/guidd",
	"scrapd":     "./scrap/cmd/scrapd",
	"postsvcd":   "./postsvc/cmd/postsvcd",
	"writebackd": "./writeback/cmd/writebackd",
	"redismon":   "./tools/redismon",
	"workwebui":  "./tools/workwebui",
	"zoo_setup":  "./tools/zoo_setup",
	"devcluster": "./tools/devcluster",
	"loadgen":    "./tools/loadgen",
	"zkexporter": "./tools/zkexporter",
}

// sharedSections are configuration.md's sections whose flags several binaries have.
var sharedSections = map[string][]string{
	"Common flags":   {"guidd", "scrapd", "postsvcd", "writebackd", "redismon"},
	"Database flags": {"postsvcd", "writebackd"},
	"Queue flags":    {"postsvcd", "writebackd"},
}

var (
	helpFlag    = regexp.MustCompile(`^\s+-([a-z0-9][a-z0-9-]*)`)
	helpDefault = regexp.MustCompile(`\(default "?(.*?)"?\)$`)
	tableFlag   = regexp.MustCompile("^\\| `--([a-z0-9-]+)`\\s*\\|([^|]*)\\|")
)

// TestConfigurationMatchesTheBinaries builds every binary and checks configuration.md against its
// -h: every flag it accepts is documented in its section or a shared one, every flag a section's
// table names exists, and the documented default is the real one.
func TestConfigurationMatchesTheBinaries(t *testing.T) {
	itest.SkipShort(t, "builds every binary")
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := tableSections(string(doc))
	dir := t.TempDir()
	build := exec.Command("go", append([]string{"build", "-o", dir + "/"}, packages()...)...)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
	for bin := range binaries {
		real := helpFlags(t, filepath.Join(dir, bin))
		documented := map[string]string{}
		for name, rows := range sections {
			if name == bin || contains(sharedSections[name], bin) {
				for f, d := range rows {
					documented[f] = d
				}
			}
		}
		for f := range sections[bin] {
			if _, ok := real[f]; !ok {
				t.Errorf("configuration.md, %s: --%s is not a flag of %s", bin, f, bin)
			}
		}
		for f, def := range real {
			d, ok := documented[f]
			if !ok {
				if !strings.Contains(string(doc), "`--"+f+"`") {
					t.Errorf("configuration.md: --%s of %s is not documented", f, bin)
				}
				continue
			}
			if !sameDefault(d, def) {
				t.Errorf("configuration.md: --%s of %s: documented default %q, -h says %q", f, bin, d, def)
			}
		}
	}
}

func packages() []string {
	var pkgs []string
	for _, p := range binaries {
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// tableSections returns, per "## " section of configuration.md, the flags its tables list with
// the default column ("—" for a table without one).
func tableSections(doc string) map[string]map[string]string {
	out := map[string]map[string]string{}
	var cur string
	hasDefault := false
	for _, line := range strings.Split(doc, "\n") {
		if name, ok := strings.CutPrefix(line, "## "); ok {
			cur = strings.TrimSpace(name)
			out[cur] = map[string]string{}
			continue
		}
		if cols := strings.Split(line, "|"); len(cols) > 3 && strings.TrimSpace(cols[1]) == "flag" {
			hasDefault = strings.TrimSpace(cols[2]) == "default"
			continue
		}
		if m := tableFlag.FindStringSubmatch(line); m != nil && cur != "" {
			def := "—"
			if hasDefault {
				def = strings.Trim(strings.TrimSpace(m[2]), "`")
			}
			out[cur][m[1]] = def
		}
	}
	return out
}

// helpFlags runs bin -h and returns its flags with their defaults ("" when none is shown).
func helpFlags(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero by design
	flags := map[string]string{}
	var last string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := helpFlag.FindStringSubmatch(sc.Text()); m != nil {
			last = m[1]
			flags[last] = ""
		} else if m := helpDefault.FindStringSubmatch(sc.Text()); m != nil && last != "" {
			flags[last] = m[1]
		}
	}
	if len(flags) == 0 {
		t.Fatalf("%s -h listed no flags:\n%s", bin, out)
	}
	return flags
}

// sameDefault compares a documented default with -h's. Descriptions ("see below") and dashes
// stand for no comparison; zero values may be written out where -h shows none; durations compare
// by value (1h and 1h0m0s).
func sameDefault(doc, help string) bool {
	switch {
	case doc == help:
		return true
	case doc == "—" || doc == "none" || strings.Contains(doc, " ") || strings.Contains(doc, "<"):
		return true
	case help == "" && (doc == "0" || doc == "false"):
		return true
	}
	a, err1 := time.ParseDuration(doc)
	b, err2 := time.ParseDuration(help)
	return err1 == nil && err2 == nil && a == b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
