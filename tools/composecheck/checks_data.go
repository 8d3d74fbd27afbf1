package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// checkPostListedByOther writes a post on the first postsvcd and waits for the second to list it.
func checkPostListedByOther(ctx context.Context, w *writer) (postRef, error) {
	p, err := w.write(ctx, 0, fmt.Sprintf("compose-check hello %d", time.Now().UnixNano()))
	if err != nil {
		return p, err
	}
	err = poll(ctx, 15*time.Second, 200*time.Millisecond, func() error {
		ids, err := w.list(ctx, 1)
		if err == nil && !slices.Contains(ids, p.ID) {
			err = fmt.Errorf("%s lists %v for user %d, without post %s", w.names[1], ids, w.user, p.ID)
		}
		return err
	})
	return p, err
}

// mariadbServices are the services the MariaDB image initialises (MARIADB_ROOT_PASSWORD).
func mariadbServices(p project) []string {
	var out []string
	for _, name := range sortedNames(p) {
		if p.Services[name].env("MARIADB_ROOT_PASSWORD") != "" {
			out = append(out, name)
		}
	}
	return out
}

// query runs one statement with the mariadb client inside a database service, as root.
func query(ctx context.Context, s *stack, svc, stmt string) (string, error) {
	pw := s.project.Services[svc].env("MARIADB_ROOT_PASSWORD")
	out, err := s.compose(ctx, "exec", "-T", "-e", "MYSQL_PWD="+pw, svc,
		"mariadb", "-h", "127.0.0.1", "-uroot", "-N", "-B", "-e", stmt)
	return strings.TrimSpace(out), err
}

// checkRowInDatabases waits for the post's row on every database server: written back to the
// primary, replicated to the replica.
func checkRowInDatabases(ctx context.Context, s *stack, w *writer, p postRef) error {
	dbs := mariadbServices(s.project)
	if len(dbs) < 2 {
		return fmt.Errorf("found database services %v, want a primary and a replica", dbs)
	}
	stmt := fmt.Sprintf("SELECT contents FROM `%s`.posts WHERE post_id = %s", w.dbName, p.ID)
	var errs []error
	for _, svc := range dbs {
		errs = append(errs, poll(ctx, 60*time.Second, 500*time.Millisecond, func() error {
			got, err := query(ctx, s, svc, stmt)
			if err == nil && got != p.Contents {
				err = fmt.Errorf("%s: post %s has contents %q, want %q", svc, p.ID, got, p.Contents)
			}
			return err
		}))
	}
	return errors.Join(errs...)
}

// healthcheck runs the service's own healthcheck command in its container.
func healthcheck(ctx context.Context, s *stack, svc string) error {
	hc := s.project.Services[svc].HealthCheck
	if hc == nil || len(hc.Test) < 2 {
		return fmt.Errorf("%s has no healthcheck", svc)
	}
	// `docker compose config` writes a literal $ as $$, as in a compose file.
	var args []string
	for _, a := range hc.Test[1:] {
		args = append(args, strings.ReplaceAll(a, "$$", "$"))
	}
	if hc.Test[0] == "CMD-SHELL" {
		args = []string{"sh", "-c", strings.Join(args, " ")}
	}
	_, err := s.exec(ctx, svc, args...)
	return err
}

// checkReplicaHealthcheckCanFail proves the replica's healthcheck looks at replication: it fails
// while the replica's threads are stopped and passes once they run again.
func checkReplicaHealthcheckCanFail(ctx context.Context, s *stack) error {
	var replica string
	for _, name := range mariadbServices(s.project) {
		if s.project.Services[name].env("MARIADB_MASTER_HOST") != "" {
			replica = name
		}
	}
	if replica == "" {
		return errors.New("no replica (a service with MARIADB_MASTER_HOST)")
	}
	if err := healthcheck(ctx, s, replica); err != nil {
		return fmt.Errorf("before stopping replication: %w", err)
	}
	if _, err := query(ctx, s, replica, "STOP REPLICA"); err != nil {
		return err
	}
	stoppedErr := healthcheck(ctx, s, replica)
	if _, err := query(ctx, s, replica, "START REPLICA"); err != nil {
		return err
	}
	if stoppedErr == nil {
		return errors.New("the healthcheck passed with replication stopped")
	}
	return poll(ctx, 30*time.Second, 500*time.Millisecond, func() error { return healthcheck(ctx, s, replica) })
}
