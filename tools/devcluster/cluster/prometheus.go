package cluster

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"text/template"
	"time"

	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/monitoring"
)

//go:embed prometheus.yml.tmpl
var prometheusTmpl string

// PrometheusConfig holds what the Prometheus configuration template needs.
type PrometheusConfig struct {
	ZK             string        // host:port of ZooKeeper
	Root           string        // ZooKeeper root of the service tree
	Services       []string      // service directories to discover (R/<svc>/nodes)
	Exporters      []string      // exporter directories to discover, the same way (ExporterDirs)
	RuleFiles      []string      // rule file globs (docs/monitoring.md)
	Interval       time.Duration // scrape interval
	SessionTimeout time.Duration // ZooKeeper session timeout of the discovery client
	Self           string        // Prometheus' own host:port
}

// Timeout is the scrape timeout: the interval, capped at 10s.
func (p PrometheusConfig) Timeout() time.Duration { return min(p.Interval, 10*time.Second) }

// EvalInterval is the rule evaluation interval: the scrape interval, but at least 5s. The alerts
// wait minutes (docs/monitoring.md); evaluating them every second only costs CPU that a loaded
// machine's 1s scrapes need.
func (p PrometheusConfig) EvalInterval() time.Duration { return max(p.Interval, 5*time.Second) }

// Jobs returns the directories scraped: the services', then the exporters'.
func (p PrometheusConfig) Jobs() []string { return append(slices.Clone(p.Services), p.Exporters...) }

// Path returns the ZooKeeper directory where service's nodes register.
func (p PrometheusConfig) Path(service string) string { return path.Join(p.Root, service, "nodes") }

// RenderPrometheusConfig renders prometheus.yml.
func RenderPrometheusConfig(p PrometheusConfig) ([]byte, error) {
	t, err := template.New("prometheus.yml").Parse(prometheusTmpl)
	if err != nil {
		return nil, fmt.Errorf("parsing the Prometheus template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("rendering the Prometheus config: %w", err)
	}
	return b.Bytes(), nil
}

func (c *Cluster) prometheusSpec(n Node) (spec, error) {
	bin, err := lookPath("prometheus")
	if err != nil {
		return spec{}, err
	}
	dir := c.dataDir(n.Name)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	addr := c.addr(n.Name)
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
		"--storage.tsdb.retention.time=2d",
		"--web.listen-address=" + addr,
		// zkpost's console (docs/monitoring.md): /consoles/zkpost.html.
		"--web.console.templates=" + filepath.Join(dir, monitoring.ConsolesDir),
		"--web.console.libraries=" + filepath.Join(dir, monitoring.ConsoleLibrariesDir),
	}
	return spec{
		bin: bin, args: append(args, c.cfg.ExtraArgs[n.Name]...),
		prepare: func(context.Context) error {
			if err := ensureDir(dir); err != nil {
				return err
			}
			if err := monitoring.Install(dir); err != nil {
				return err
			}
			b, err := RenderPrometheusConfig(PrometheusConfig{
				ZK: c.ZKAddr(), Root: c.cfg.ZKRoot, Services: ServiceDirs, Exporters: ExporterDirs,
				RuleFiles: []string{filepath.Join(dir, monitoring.RulesDir, "*.rules.yml")},
				Interval:  c.cfg.ScrapeInterval, SessionTimeout: c.cfg.ZKSessionTimeout, Self: addr,
			})
			if err != nil {
				return err
			}
			return os.WriteFile(cfgPath, b, 0o644)
		},
		ready: func(ctx context.Context) bool { return launch.Ready(ctx, "http://"+addr+"/-/ready") },
	}, nil
}
