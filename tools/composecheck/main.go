// Command composecheck is `make compose-check`: a smoke test of docker-compose.yml against a real
// Docker engine, on a Debian machine that reaches no image registry (docs/compose.md).
//
// Set-up, each step skipped when already done: Debian's docker.io and mmdebstrap, a dockerd (started
// here when none answers, and stopped again at the end), a Compose v2 plugin built from the Go
// module proxy, the stand-in base images of docker/standin (built once, rebuilt when their recipe
// changes), and the project image from docker/Dockerfile, built with no network from a context
// with vendored modules.
//
// Then `docker compose up --wait` with docker/standin/compose.yml over the compose file, under the
// project name zkpost-check and with no port published, and the checks of checks.go. It prints one
// PASS or FAIL line per check and `N passed, M failed` last, and exits non-zero when any failed.
// An engine that cannot start is a failure, never a skip.
//
//	go run ./tools/composecheck [--repo DIR] [--project NAME] [--keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		// The summary line stays last: a failed check says nothing more here.
		if !errors.Is(err, errChecksFailed) {
			fmt.Fprintln(os.Stderr, "composecheck:", err)
		}
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	repo        string        // the repository root: docker-compose.yml and docker/
	project     string        // the compose project name
	workDir     string        // logs, the engine's log and build contexts
	waitTimeout time.Duration // for `up --wait`
	keep        bool          // leave the stack up after the checks (and skip the down check)
}

func parseFlags(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("composecheck", flag.ContinueOnError)
	fs.StringVar(&c.repo, "repo", ".", "repository root")
	fs.StringVar(&c.project, "project", "zkpost-check", "compose project name (unique to this check)")
	fs.StringVar(&c.workDir, "work-dir", "", "directory for logs and build contexts (default: a new temp dir)")
	fs.DurationVar(&c.waitTimeout, "wait-timeout", 8*time.Minute, "how long `up --wait` may take")
	fs.BoolVar(&c.keep, "keep", false, "leave the stack running after the checks")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	abs, err := filepath.Abs(c.repo)
	if err != nil {
		return c, fmt.Errorf("repository root: %w", err)
	}
	c.repo = abs
	if c.workDir == "" {
		if c.workDir, err = os.MkdirTemp(getenv("TMPDIR"), "composecheck-"); err != nil {
			return c, fmt.Errorf("work dir: %w", err)
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseFlags(args, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := &report{out: stdout}
	start := time.Now()
	engine, ok := setUp(ctx, log, cfg, r)
	if engine != nil {
		defer engine.stop(log)
	}
	if ok {
		checkStack(ctx, log, cfg, r)
	}
	log.Info("compose-check done", "took", time.Since(start).Round(time.Second), "work_dir", cfg.workDir)
	r.summary()
	if r.failed > 0 {
		return errChecksFailed
	}
	return nil
}

// errChecksFailed is run's error when it ran and some check failed.
var errChecksFailed = errors.New("some checks failed")

// report counts and prints check results.
type report struct {
	out            io.Writer
	passed, failed int
}

// check records one result: err == nil passes. It returns whether the check passed.
func (r *report) check(name string, err error) bool {
	if err != nil {
		r.failed++
		fmt.Fprintf(r.out, "FAIL %s: %v\n", name, err)
		return false
	}
	r.passed++
	fmt.Fprintf(r.out, "PASS %s\n", name)
	return true
}

// summary prints the closing line CI reads.
func (r *report) summary() {
	fmt.Fprintf(r.out, "%d passed, %d failed\n", r.passed, r.failed)
}
