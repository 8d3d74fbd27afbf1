package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// composeModule is the Compose v2 plugin built when none is installed: the newest release whose
// go.mod the Go of this repository (go.mod: go 1.26.8) satisfies. `go install` refuses it (its go.mod
// has exclude directives), so it is built inside the downloaded module source.
const composeModule = "github.com/docker/compose/v5@v5.6.0"

// pluginPath is where the docker CLI finds plugins for every user.
const pluginPath = "/usr/local/lib/docker/cli-plugins/docker-compose"

// setUp makes the engine, the Compose plugin and every image ready, reporting each step. The
// engine it returns (nil when none was started or found) must be stopped by the caller.
func setUp(ctx context.Context, log *slog.Logger, cfg config, r *report) (*engine, bool) {
	if !r.check("set-up: docker.io and mmdebstrap from Debian", ensurePackages(ctx, log)) {
		return nil, false
	}
	eng, err := startEngine(ctx, log, filepath.Join(cfg.workDir, "dockerd.log"))
	if !r.check("set-up: Docker engine answers", err) {
		return eng, false
	}
	if !r.check("set-up: Compose v2 plugin", ensureCompose(ctx, log, cfg.workDir)) {
		return eng, false
	}
	d := docker{log: log, env: []string{"DOCKER_BUILDKIT=0", "ZKPOST_IMAGE=" + projectImage}}
	if !r.check("set-up: stand-in images", buildStandins(ctx, log, d, cfg)) {
		return eng, false
	}
	ok := r.check("set-up: project image from docker/Dockerfile, offline", buildProjectImage(ctx, log, d, cfg))
	return eng, ok
}

// ensurePackages installs from Debian what set-up runs: dockerd (docker.io) and mmdebstrap.
func ensurePackages(ctx context.Context, log *slog.Logger) error {
	var missing []string
	for pkg, bin := range map[string]string{"docker.io": "dockerd", "mmdebstrap": "mmdebstrap"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	log.Info("installing", "packages", missing)
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	install := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	if _, err := command(ctx, log, "", env, nil, "apt-get", install...); err == nil {
		return nil
	}
	// A fresh machine may not have package lists yet.
	if _, err := command(ctx, log, "", env, nil, "apt-get", "update"); err != nil {
		return err
	}
	_, err := command(ctx, log, "", env, nil, "apt-get", install...)
	return err
}

// engine is a dockerd this program started.
type engine struct {
	cmd  *exec.Cmd
	done chan error
}

// startEngine returns at once when a Docker engine answers; otherwise it starts dockerd (overlay2,
// cgroupfs) and waits for it to answer.
func startEngine(ctx context.Context, log *slog.Logger, logPath string) (*engine, error) {
	if _, err := command(ctx, log, "", nil, nil, "docker", "info"); err == nil {
		log.Info("using the running Docker engine")
		return nil, nil
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("dockerd log: %w", err)
	}
	defer f.Close()
	cmd := exec.Command("dockerd", "--storage-driver", "overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dockerd: %w", err)
	}
	e := &engine{cmd: cmd, done: make(chan error, 1)}
	go func() { e.done <- cmd.Wait() }()
	log.Info("started dockerd", "pid", cmd.Process.Pid, "log", logPath)
	return e, e.waitReady(ctx, log, logPath)
}

func (e *engine) waitReady(ctx context.Context, log *slog.Logger, logPath string) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-e.done:
			e.done <- err
			return fmt.Errorf("dockerd exited (%v); its log: %s", err, logTail(logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := command(ctx, log, "", nil, nil, "docker", "info"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("dockerd did not answer within 90 s; its log: %s", logTail(logPath))
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), 2000)
}

// stop ends the dockerd this program started (SIGTERM, then SIGKILL after 30 s); a nil engine
// was not started here and is left alone.
func (e *engine) stop(log *slog.Logger) {
	if e == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
	log.Info("stopped the dockerd this run started")
}

// ensureCompose builds the Compose v2 plugin from the Go module proxy unless `docker compose`
// already works.
func ensureCompose(ctx context.Context, log *slog.Logger, workDir string) error {
	if _, err := command(ctx, log, "", nil, nil, "docker", "compose", "version"); err == nil {
		return nil
	}
	log.Info("building the Compose plugin", "module", composeModule)
	env := []string{"GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOWORK=off"}
	out, err := command(ctx, log, workDir, env, nil, "go", "mod", "download", "-json", composeModule)
	if err != nil {
		return err
	}
	var mod struct{ Dir, Version, Error string }
	if err := json.Unmarshal([]byte(out), &mod); err != nil || mod.Error != "" || mod.Dir == "" {
		return fmt.Errorf("downloading %s: %v %s", composeModule, err, mod.Error)
	}
	if err := os.MkdirAll(filepath.Dir(pluginPath), 0o755); err != nil {
		return fmt.Errorf("plugin dir: %w", err)
	}
	ldflags := "-s -w -X github.com/docker/compose/v5/internal.Version=" + mod.Version
	if _, err := command(ctx, log, mod.Dir, env, nil, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", pluginPath, "./cmd"); err != nil {
		return err
	}
	if _, err := command(ctx, log, "", nil, nil, "docker", "compose", "version"); err != nil {
		return errors.Join(errors.New("the plugin built but does not run"), err)
	}
	return nil
}
