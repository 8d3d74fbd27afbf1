package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// checkStack brings the stack up and runs every check against it, then takes it down.
func checkStack(ctx context.Context, log *slog.Logger, cfg config, r *report) {
	s := &stack{d: docker{log: log, env: []string{"ZKPOST_IMAGE=" + projectImage}}, cfg: cfg}
	if !r.check("compose files: every service runs a local image and publishes nothing", loadProject(ctx, s)) {
		return
	}
	if err := s.down(ctx); err != nil { // what an interrupted earlier run left
		log.Warn("removing leftovers", "err", err)
	}
	start := time.Now()
	upErr := s.up(ctx)
	if r.check(fmt.Sprintf("docker compose up --wait: every service healthy (%s)", time.Since(start).Round(time.Second)), upErr) {
		runChecks(ctx, log, s, r)
	} else {
		s.logsOnFailure(ctx, log)
	}
	if cfg.keep {
		log.Info("leaving the stack up (--keep)", "project", cfg.project)
		return
	}
	r.check("docker compose down -v leaves no container, network or volume", downLeavesNothing(ctx, s))
}

// runChecks runs the checks that need the stack up, in an order where each uses what the one
// before it proved.
func runChecks(ctx context.Context, log *slog.Logger, s *stack, r *report) {
	w, err := newWriter(ctx, s)
	if !r.check("two postsvcd reachable", err) {
		return
	}
	p, err := checkPostListedByOther(ctx, w)
	r.check("a post written on one postsvcd is listed by the other", err)
	if err == nil {
		r.check("its row is in the MariaDB primary and on the replica", checkRowInDatabases(ctx, s, w, p))
	}
	r.check("the replica's healthcheck fails while replication is stopped, and passes again",
		checkReplicaHealthcheckCanFail(ctx, s))
	tree, err := checkRegistrations(ctx, s)
	if !r.check("every daemon is registered in ZooKeeper (zoo_setup --list in a container)", err) {
		return
	}
	r.check("every Prometheus target is up, and every ZooKeeper member is one", checkPrometheusTargets(ctx, s, tree))
	took, err := checkGuidKill(ctx, log, s, w, tree)
	name := "a killed guidd leaves ZooKeeper within the session timeout + 2 s, and writes still succeed"
	if err == nil {
		name += fmt.Sprintf(" (gone after %s)", took.Round(100*time.Millisecond))
	}
	r.check(name, err)
}

// poll calls f until it returns nil or the deadline passes, and returns its last error.
func poll(ctx context.Context, within, every time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(every):
		}
	}
}

// servicesRunning returns the services whose command starts with binary, sorted.
func servicesRunning(p project, binary string) []string {
	var out []string
	for _, name := range sortedNames(p) {
		if c := p.Services[name].Command; len(c) > 0 && c[0] == binary {
			out = append(out, name)
		}
	}
	return out
}

// advertised maps every address a daemon of the project advertises in ZooKeeper (its
// <BINARY>_ADVERTISE variable) to its service.
func advertised(p project) map[string]string {
	out := map[string]string{}
	for name, svc := range p.Services {
		for key, v := range svc.Environment {
			if strings.HasSuffix(key, "_ADVERTISE") && v != nil && *v != "" {
				out[*v] = name
			}
		}
	}
	return out
}

// checkRegistrations compares zoo_setup's view of ZooKeeper with the advertised addresses: each
// has one ALIVE member, and there is no other member.
func checkRegistrations(ctx context.Context, s *stack) (zkTree, error) {
	want := advertised(s.project)
	var tree zkTree
	err := poll(ctx, 30*time.Second, time.Second, func() error {
		var err error
		if tree, err = s.zooSetupList(ctx); err != nil {
			return err
		}
		return compareMembers(tree, want)
	})
	return tree, err
}

func compareMembers(tree zkTree, want map[string]string) error {
	seen := map[string]bool{}
	problems := append([]string{}, tree.Problems...)
	for dir, members := range tree.members() {
		for _, m := range members {
			switch {
			case want[m.addr()] == "":
				problems = append(problems, fmt.Sprintf("%s/%s is %s, which no service advertises", dir, m.Node, m.addr()))
			case seen[m.addr()]:
				problems = append(problems, fmt.Sprintf("%s is registered twice", m.addr()))
			case m.Status != "ALIVE":
				problems = append(problems, fmt.Sprintf("%s is %s", m.addr(), m.Status))
			}
			seen[m.addr()] = true
		}
	}
	for addr, svc := range want {
		if !seen[addr] {
			problems = append(problems, fmt.Sprintf("service %s (%s) is not registered", svc, addr))
		}
	}
	if len(want) == 0 {
		problems = append(problems, "no service advertises an address")
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
