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

	"go.yaml.in/yaml/v4"

	"github.com/the-red/zkpost/internal/itest"
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
