package monitoring_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/monitoring"
	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

// promtool runs promtool with args in dir and fails the test with its output when it fails.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin := itest.Require(t, "promtool")
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("no files match %s (err %v)", pattern, err)
	}
	return m
}

func TestRulesPassPromtoolCheck(t *testing.T) {
	out := promtool(t, ".", append([]string{"check", "rules"}, glob(t, "rules/*.rules.yml")...)...)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules printed no SUCCESS:\n%s", out)
	}
}

func TestRulesPassPromtoolUnitTests(t *testing.T) {
	promtool(t, ".", append([]string{"test", "rules"}, glob(t, "tests/*_test.yml")...)...)
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	var all ruleFile
	for _, p := range glob(t, "rules/*.rules.yml") {
		var f ruleFile
		readYAML(t, p, &f)
		all.Groups = append(all.Groups, f.Groups...)
	}
	return all
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func alertNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !slices.Contains(names, r.Alert) {
				names = append(names, r.Alert)
			}
		}
	}
	sort.Strings(names)
	return names
}

// TestEveryAlertIsTestedBothWays checks the promtool tests' coverage: each alert has an
// evaluation where it fires and one where it must stay silent.
func TestEveryAlertIsTestedBothWays(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "tests/alerts_test.yml", &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	names := alertNames(t)
	if len(names) < 20 {
		t.Fatalf("found %d alerts, want the 20 or more of docs/monitoring.md", len(names))
	}
	for _, a := range names {
		if !fires[a] {
			t.Errorf("alert %s: no promtool test shows it firing", a)
		}
		if !silent[a] {
			t.Errorf("alert %s: no promtool test shows it silent", a)
		}
	}
}

// TestEveryAlertHasARunbookEntry: each alert's runbook annotation names a heading of
// docs/monitoring.md (GitHub's anchor: the heading lower-cased).
func TestEveryAlertHasARunbookEntry(t *testing.T) {
	doc, err := os.ReadFile("../docs/monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors["docs/monitoring.md#"+strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if rb := r.Annotations["runbook"]; !anchors[rb] {
				t.Errorf("alert %s: runbook %q is no heading of docs/monitoring.md", r.Alert, rb)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary", r.Alert)
			}
		}
	}
}

// panelExprs returns every expression of the Grafana dashboards and the console templates.
func panelExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	for _, p := range glob(t, "dashboards/*.json") {
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, panel := range d.Panels {
			for i, tg := range panel.Targets {
				exprs[fmt.Sprintf("%s: %s #%d", filepath.Base(p), panel.Title, i)] = tg.Expr
			}
		}
	}
	jsExpr := regexp.MustCompile(`expr: "((?:[^"\\]|\\.)*)"`)
	for _, p := range glob(t, "consoles/*.html") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range jsExpr.FindAllStringSubmatch(string(b), -1) {
			var e string
			if err := json.Unmarshal([]byte(`"`+m[1]+`"`), &e); err != nil {
				t.Fatalf("%s: expr %q: %v", p, m[1], err)
			}
			exprs[fmt.Sprintf("%s #%d", filepath.Base(p), i)] = e
		}
	}
	if len(exprs) < 30 {
		t.Fatalf("found %d panel expressions, want the 30 or more the dashboard has", len(exprs))
	}
	return exprs
}

// TestPanelExpressionsPassPromtool writes every panel expression into a rule file of recording
// rules, which promtool check rules parses: a broken expression fails with its panel's name.
func TestPanelExpressionsPassPromtool(t *testing.T) {
	exprs := panelExprs(t)
	type rule struct {
		Record string            `json:"record"`
		Expr   string            `json:"expr"`
		Labels map[string]string `json:"labels"`
	}
	var rules []rule
	for name, e := range exprs {
		if strings.TrimSpace(e) == "" {
			t.Errorf("%s: empty expression", name)
		}
		rules = append(rules, rule{Record: "panel:check", Expr: e, Labels: map[string]string{"panel": name}})
	}
	b, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "panels", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "panels.rules.yml") // YAML is a superset of JSON
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, ".", "check", "rules", p)
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Fatalf("promtool check rules: want %q in\n%s", want, out)
	}
}

// TestPrometheusConfigsPassPromtool checks both Prometheus configurations with the rule files
// they load: devcluster's (rendered as devcluster renders it) and docker-compose's (laid out as
// docker-compose.yml mounts it).
func TestPrometheusConfigsPassPromtool(t *testing.T) {
	t.Run("devcluster", func(t *testing.T) {
		dir := t.TempDir()
		if err := monitoring.Install(dir); err != nil {
			t.Fatal(err)
		}
		b, err := cluster.RenderPrometheusConfig(cluster.PrometheusConfig{
			ZK: "127.0.0.1:2181", Root: "/the_red/my_service", Services: cluster.ServiceDirs,
			Exporters: cluster.ExporterDirs, RuleFiles: []string{filepath.Join(dir, monitoring.RulesDir, "*.rules.yml")},
			Interval: 5 * time.Second, SessionTimeout: 4 * time.Second, Self: "127.0.0.1:9090",
		})
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, dir, b)
	})
	t.Run("compose", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.CopyFS(filepath.Join(dir, "rules"), os.DirFS("rules")); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("../docker/prometheus.yml")
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, dir, b)
	})
}

// checkConfig writes cfg as dir/prometheus.yml and runs promtool check config on it, which also
// checks every rule file it names; it must find both of ours.
func checkConfig(t *testing.T, dir string, cfg []byte) {
	t.Helper()
	p := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(p, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, dir, "check", "config", p)
	for _, f := range []string{"alerts.rules.yml", "recording.rules.yml"} {
		if !strings.Contains(out, f) {
			t.Errorf("promtool check config did not check %s:\n%s", f, out)
		}
	}
	for _, job := range append(slices.Clone(cluster.ServiceDirs), cluster.ExporterDirs...) {
		if !strings.Contains(string(cfg), "job_name: "+job+"\n") {
			t.Errorf("no scrape job %s in\n%s", job, cfg)
		}
	}
}

// metricToken finds the names in a PromQL expression that could be metrics: identifiers not
// followed by "(" (functions) and not inside {…} (matchers) or after by/without/on/ignoring.
var (
	matchers    = regexp.MustCompile(`\{[^}]*\}`)
	groupings   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ranges      = regexp.MustCompile(`\[[^\]]*\]`)
	strs        = regexp.MustCompile(`"[^"]*"`)
	identifiers = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	keywords    = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

func metricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{strs, matchers, groupings, ranges} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var out []string
	for _, m := range identifiers.FindAllString(expr, -1) {
		if !strings.HasSuffix(m, "(") && !keywords[strings.ToLower(m)] {
			out = append(out, m)
		}
	}
	return out
}

// TestExpressionsUseMetricsThatExist: every metric that a rule or a panel reads is recorded by
// a rule, exported by our code (its name is a string in a .go file), or comes from an exporter
// or Prometheus itself. A misspelt metric would make an alert that never fires.
func TestExpressionsUseMetricsThatExist(t *testing.T) {
	code := goSource(t, "..")
	recorded := map[string]bool{}
	var exprs []string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			exprs = append(exprs, r.Expr)
		}
	}
	for _, e := range panelExprs(t) {
		exprs = append(exprs, e)
	}
	external := []string{"redis_", "mysql_", "node_", "zookeeper_", "process_", "go_"}
	for _, e := range exprs {
		for _, name := range metricNames(e) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
			switch {
			case recorded[name], name == "up", name == "ALERTS":
			case slices.ContainsFunc(external, func(p string) bool { return strings.HasPrefix(name, p) }):
			case strings.Contains(code, `"`+base+`"`):
			default:
				t.Errorf("%s: metric %s is recorded by no rule and exported by none of our code", e, name)
			}
		}
	}
}

// goSource returns the text of every non-test Go file under root.
func goSource(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(src)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`sum by (job) (rate(http_requests_total{route!~"a|b"}[5m])) / job:x:rate5m > 0.1 and on () vector(0) or absent(up{job="guid"} == 1)`)
	want := []string{"http_requests_total", "job:x:rate5m", "up"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
