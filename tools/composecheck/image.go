package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// projectImage is the image of our binaries built for the check from docker/Dockerfile over the
// stand-ins; a test-only name, so it never replaces an image a user built with docker compose.
const projectImage = "zkpost-check/zkpost:test"

// buildProjectImage builds docker/Dockerfile with no network: its context is a copy of the
// repository's files (tracked and untracked, not ignored) plus `go mod vendor`, and its base
// images are the stand-ins. Docker's layer cache makes an unchanged tree a quick rebuild.
func buildProjectImage(ctx context.Context, log *slog.Logger, d docker, cfg config) error {
	dir := filepath.Join(cfg.workDir, "project-context")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("project context: %w", err)
	}
	defer os.RemoveAll(dir) // a copy of the repository and its modules: no use after the build
	if err := copyRepoFiles(ctx, log, cfg.repo, dir); err != nil {
		return err
	}
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off"}
	if _, err := command(ctx, log, cfg.repo, env, nil, "go", "mod", "vendor", "-o", filepath.Join(dir, "vendor")); err != nil {
		return err
	}
	log.Info("building the project image (quick when nothing it copies changed)", "image", projectImage)
	_, err := d.run(ctx, "build", "--network", "none", "-f", filepath.Join(dir, "docker", "Dockerfile"),
		"--build-arg", "GO_IMAGE="+standinImage("golang"),
		"--build-arg", "RUNTIME_IMAGE="+standinImage("distroless"),
		"--build-arg", "GOFLAGS=-mod=vendor",
		"-t", projectImage, dir)
	return err
}

// copyRepoFiles copies the files git knows of, or would add, from repo to dir.
func copyRepoFiles(ctx context.Context, log *slog.Logger, repo, dir string) error {
	out, err := command(ctx, log, repo, nil, nil, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return err
	}
	for _, name := range strings.Split(out, "\x00") {
		if name == "" {
			continue
		}
		if err := copyFile(filepath.Join(repo, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies a regular file with its mode; a file deleted from the work tree is skipped.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", from, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("copying %s: %w", from, err)
	}
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return fmt.Errorf("copying %s: %w", from, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copying %s: %w", from, err)
	}
	return dst.Close()
}
