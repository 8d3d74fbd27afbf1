package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// overrideFile maps the compose services to the stand-ins and publishes nothing.
const overrideFile = "docker/standin/compose.yml"

// stack runs docker compose for the project: docker-compose.yml with overrideFile over it.
type stack struct {
	d       docker
	cfg     config
	project project // the merged configuration, as `docker compose config` has it
}

// project is the part of `docker compose config --format json` the checks read.
type project struct {
	Services map[string]service `json:"services"`
}

// service is one service of the merged configuration.
type service struct {
	Image       string             `json:"image"`
	Build       *json.RawMessage   `json:"build"`
	Command     []string           `json:"command"`
	Environment map[string]*string `json:"environment"`
	Ports       []json.RawMessage  `json:"ports"`
	HealthCheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
}

// env returns one environment variable of the service ("" when unset).
func (s service) env(key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func (s stack) compose(ctx context.Context, args ...string) (string, error) {
	base := []string{"compose", "-p", s.cfg.project,
		"-f", filepath.Join(s.cfg.repo, "docker-compose.yml"),
		"-f", filepath.Join(s.cfg.repo, overrideFile)}
	return s.d.run(ctx, append(base, args...)...)
}

// loadProject reads the merged configuration and refuses one that would pull a public image or
// take a host port.
func loadProject(ctx context.Context, s *stack) error {
	out, err := s.compose(ctx, "config", "--format", "json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), &s.project); err != nil {
		return fmt.Errorf("parsing docker compose config: %w", err)
	}
	return validateOffline(s.project)
}

// validateOffline checks that every service runs a local test-only image and publishes no port:
// a service added to docker-compose.yml without its line in overrideFile fails here, clearly.
func validateOffline(p project) error {
	var problems []string
	for _, name := range sortedNames(p) {
		svc := p.Services[name]
		if svc.Image != projectImage && !strings.HasPrefix(svc.Image, "zkpost-standin/") {
			problems = append(problems, fmt.Sprintf("%s runs %q, not a stand-in", name, svc.Image))
		}
		if len(svc.Ports) > 0 {
			problems = append(problems, fmt.Sprintf("%s publishes ports", name))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", overrideFile, strings.Join(problems, "; "))
	}
	return nil
}

func sortedNames(p project) []string {
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// up starts the stack and waits until every service is healthy (or, for a one-shot, exited 0).
func (s stack) up(ctx context.Context) error {
	secs := fmt.Sprint(int(s.cfg.waitTimeout.Seconds()))
	_, err := s.compose(ctx, "up", "--detach", "--wait", "--wait-timeout", secs, "--no-build", "--pull", "never", "--quiet-pull")
	return err
}

// down removes the project with its volumes.
func (s stack) down(ctx context.Context) error {
	_, err := s.compose(ctx, "down", "--volumes", "--remove-orphans", "--timeout", "20")
	return err
}

// containerID returns the id of the service's (first) container.
func (s stack) containerID(ctx context.Context, svc string) (string, error) {
	out, err := s.compose(ctx, "ps", "--all", "-q", svc)
	if err != nil {
		return "", err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if id == "" {
		return "", fmt.Errorf("service %s has no container", svc)
	}
	return id, nil
}

// addr returns host:port of the service's container on the project network, which this host
// reaches directly (nothing is published).
func (s stack) addr(ctx context.Context, svc string, port int) (string, error) {
	id, err := s.containerID(ctx, svc)
	if err != nil {
		return "", err
	}
	out, err := s.d.run(ctx, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id)
	if err != nil {
		return "", err
	}
	ip, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if ip == "" {
		return "", fmt.Errorf("service %s has no address", svc)
	}
	return fmt.Sprintf("%s:%d", ip, port), nil
}

// exec runs a command in a running service's container.
func (s stack) exec(ctx context.Context, svc string, args ...string) (string, error) {
	return s.compose(ctx, append([]string{"exec", "-T", svc}, args...)...)
}

// zooSetupList runs `zoo_setup --list --json` in a new container of the zoo_setup service.
func (s stack) zooSetupList(ctx context.Context) (zkTree, error) {
	var tree zkTree
	out, err := s.compose(ctx, "run", "--rm", "--no-deps", "-T", "zoo_setup",
		"zoo_setup", "--zk", "zookeeper:2181", "--list", "--json")
	if err != nil {
		return tree, err
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		return tree, fmt.Errorf("parsing zoo_setup --list --json: %w", err)
	}
	return tree, nil
}

// zkTree is the part of zoo_setup's --list --json the checks read.
type zkTree struct {
	Root     string                `json:"root"`
	Services map[string][]zkMember `json:"services"`
	Redismon struct {
		Leader     string   `json:"leader"`
		Candidates []string `json:"candidates"`
	} `json:"redismon"`
	Problems []string `json:"problems"`
}

// members returns every registered instance by directory: the service members, and redismon's
// election candidates (zoo_setup lists redismon's nodes that way).
func (t zkTree) members() map[string][]zkMember {
	out := map[string][]zkMember{}
	for dir, ms := range t.Services {
		out[dir] = append(out[dir], ms...)
	}
	for _, c := range t.Redismon.Candidates {
		m := zkMember{Node: c, Status: "ALIVE"}
		host, port, err := net.SplitHostPort(c)
		if err == nil {
			m.Host = host
			m.Port, err = strconv.Atoi(port)
		}
		if err != nil {
			m.Status = "unparsable: " + c
		}
		out["redismon"] = append(out["redismon"], m)
	}
	return out
}

// zkMember is one registered instance.
type zkMember struct {
	Node   string `json:"node"`
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Status string `json:"status"`
}

func (m zkMember) addr() string { return fmt.Sprintf("%s:%d", m.Host, m.Port) }

// logsOnFailure logs the state of every service and the end of the unhealthy ones' logs.
func (s stack) logsOnFailure(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	ps, _ := s.compose(ctx, "ps", "--all", "--format", "{{.Service}}\t{{.State}}\t{{.Status}}")
	log.Error("stack state", "ps", ps)
	for _, line := range strings.Split(ps, "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && !strings.Contains(f[2], "(healthy)") && !strings.Contains(f[2], "Exited (0)") {
			logs, _ := s.compose(ctx, "logs", "--no-color", "--tail", "40", f[0])
			log.Error("service log", "service", f[0], "status", f[2], "log", logs)
		}
	}
}
