package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"
)

// command runs one program and returns its standard output; a failure carries the end of its
// standard error. dir and env (added to the inherited environment) may be empty.
func command(ctx context.Context, log *slog.Logger, dir string, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Stdin = dir, stdin
	if len(env) > 0 {
		cmd.Env = append(cmd.Environ(), env...)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	log.Debug("ran", "cmd", name+" "+strings.Join(args, " "), "took", time.Since(start), "err", err)
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, short(args), err, tail(errOut.String(), 1500))
	}
	return out.String(), nil
}

// short abbreviates a long argument list for error messages.
func short(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// tail keeps the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// docker runs the docker CLI with a fixed environment (the legacy builder, and the variables the
// compose files interpolate).
type docker struct {
	log *slog.Logger
	env []string
}

func (d docker) run(ctx context.Context, args ...string) (string, error) {
	return command(ctx, d.log, "", d.env, nil, "docker", args...)
}

// runIn runs docker in dir with stdin.
func (d docker) runIn(ctx context.Context, dir string, stdin io.Reader, args ...string) (string, error) {
	return command(ctx, d.log, dir, d.env, stdin, "docker", args...)
}
