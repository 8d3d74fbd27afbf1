// Package monitoring ships zkpost's Prometheus rules, console templates and Grafana dashboard
// (docs/monitoring.md), embedded so that devcluster's Prometheus loads the very files that
// docker-compose.yml mounts into its own.
//
// Layout: rules/*.rules.yml (recording rules and alerts), tests/*_test.yml (promtool unit tests
// of every alert), consoles/ and console_libraries/ (Prometheus console templates: the key
// graphs in Prometheus' own UI), dashboards/ (Grafana JSON). The package's tests run promtool
// over all of it.
package monitoring

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed rules/*.rules.yml consoles console_libraries
var files embed.FS

// The directories Install writes under its dir, named as Prometheus' flags take them.
const (
	RulesDir            = "rules"             // rule_files: <dir>/rules/*.rules.yml
	ConsolesDir         = "consoles"          // --web.console.templates
	ConsoleLibrariesDir = "console_libraries" // --web.console.libraries
)

// Install writes the rule files and console templates under dir (RulesDir, ConsolesDir,
// ConsoleLibrariesDir), replacing files of the same names.
func Install(dir string) error {
	return fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("installing monitoring files: %w", err)
			}
			return nil
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return fmt.Errorf("installing monitoring files: %w", err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return fmt.Errorf("installing monitoring files: %w", err)
		}
		return nil
	})
}
