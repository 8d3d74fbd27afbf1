package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// recipeLabel holds the hash of what an image was built from, so that a later run reuses it
// while the recipe is unchanged and rebuilds it when it changed.
const recipeLabel = "org.zkpost.standin.recipe"

// baseImage is the Debian root file system every stand-in starts from; test-only names never
// shadow the real images.
const baseImage = "zkpost-standin/debian:test"

// basePackages are the Debian packages of baseImage: the servers the stand-ins run and what
// their healthchecks call (docker/standin/README.md).
var basePackages = []string{
	"zookeeper", "redis-server", "redis-tools", "mariadb-server", "mariadb-client",
	"prometheus", "wget", "ca-certificates", "tzdata",
}

// mmdebstrapOptions keep the root file system small: no recommended packages, manuals,
// documentation or translations. The man1 directory stays, empty: Java's postinst links into it.
var mmdebstrapOptions = []string{
	"--variant=apt", "--mode=root", "--format=tar",
	`--aptopt=APT::Install-Recommends "false"`,
	`--setup-hook=mkdir -p "$1/usr/share/man/man1"`,
	"--dpkgopt=path-exclude=/usr/share/man/*",
	"--dpkgopt=path-exclude=/usr/share/doc/*",
	"--dpkgopt=path-include=/usr/share/doc/*/copyright",
	"--dpkgopt=path-exclude=/usr/share/locale/*",
}

// standins are the recipes under docker/standin, built in this order after baseImage.
var standins = []string{"zookeeper", "redis", "mariadb", "prometheus", "golang", "distroless"}

func standinImage(name string) string { return "zkpost-standin/" + name + ":test" }

// buildStandins builds baseImage and every stand-in whose recipe changed since its last build.
func buildStandins(ctx context.Context, log *slog.Logger, d docker, cfg config) error {
	baseHash := hashStrings(append(append([]string{hostSuite()}, basePackages...), mmdebstrapOptions...))
	if err := ensureImage(ctx, log, d, baseImage, baseHash, func() error {
		return buildBase(ctx, log, d, baseHash)
	}); err != nil {
		return err
	}
	baseID, err := d.run(ctx, "image", "inspect", "-f", "{{.Id}}", baseImage)
	if err != nil {
		return err
	}
	for _, name := range standins {
		if err := buildStandin(ctx, log, d, cfg, name, strings.TrimSpace(baseID)); err != nil {
			return err
		}
	}
	return nil
}

func buildStandin(ctx context.Context, log *slog.Logger, d docker, cfg config, name, baseID string) error {
	dir := filepath.Join(cfg.repo, "docker", "standin", name)
	hash, err := hashDir(dir)
	if err != nil {
		return err
	}
	hash = hashStrings([]string{hash, baseID})
	if name == "golang" {
		goroot, err := goEnv(ctx, log, "GOROOT")
		if err != nil {
			return err
		}
		version, err := goEnv(ctx, log, "GOVERSION")
		if err != nil {
			return err
		}
		hash = hashStrings([]string{hash, goroot, version})
	}
	return ensureImage(ctx, log, d, standinImage(name), hash, func() error {
		context := dir
		if name == "golang" {
			if context, err = golangContext(ctx, log, dir, cfg.workDir); err != nil {
				return err
			}
			defer os.RemoveAll(context) // a copy of GOROOT
		}
		_, err := d.run(ctx, "build", "--network", "none", "--label", recipeLabel+"="+hash,
			"--build-arg", "BASE="+baseImage, "-t", standinImage(name), context)
		return err
	})
}

// ensureImage runs build unless image exists with the recipe hash want.
func ensureImage(ctx context.Context, log *slog.Logger, d docker, image, want string, build func() error) error {
	got, err := d.run(ctx, "image", "inspect", "-f", "{{index .Config.Labels \""+recipeLabel+"\"}}", image)
	if err == nil && strings.TrimSpace(got) == want {
		log.Info("reusing image", "image", image)
		return nil
	}
	log.Info("building image", "image", image)
	if err := build(); err != nil {
		return fmt.Errorf("building %s: %w", image, err)
	}
	return nil
}

// buildBase streams an mmdebstrap root file system into `docker import`.
func buildBase(ctx context.Context, log *slog.Logger, d docker, hash string) error {
	sources, err := hostSources()
	if err != nil {
		return err
	}
	args := append(append([]string{}, mmdebstrapOptions...), "--include="+strings.Join(basePackages, ","), hostSuite(), "-")
	strap := exec.CommandContext(ctx, "mmdebstrap", append(args, sources...)...)
	strap.Stdin = nil
	var errOut strings.Builder
	strap.Stderr = &errOut
	tarStream, err := strap.StdoutPipe()
	if err != nil {
		return fmt.Errorf("mmdebstrap pipe: %w", err)
	}
	if err := strap.Start(); err != nil {
		return fmt.Errorf("starting mmdebstrap: %w", err)
	}
	_, importErr := d.runIn(ctx, "", tarStream, "import", "--change", "LABEL "+recipeLabel+"="+hash,
		"--change", `CMD ["bash"]`, "-", baseImage)
	if importErr != nil {
		_, _ = io.Copy(io.Discard, tarStream)
	}
	if err := strap.Wait(); err != nil {
		return fmt.Errorf("mmdebstrap: %w: %s", err, tail(errOut.String(), 2000))
	}
	log.Info("built the Debian root file system", "image", baseImage)
	return importErr
}

// hostSuite is the host's Debian release: the stand-ins' packages come from the same sources.
func hostSuite() string {
	b, _ := os.ReadFile("/etc/os-release")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok && v != "" {
			return strings.Trim(v, `"`)
		}
	}
	return "bookworm"
}

// hostSources are the host's apt source files, which mmdebstrap copies into the new system: it
// reaches the same mirror the host does, whatever that is.
func hostSources() ([]string, error) {
	var out []string
	for _, pattern := range []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Size() > 0 {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no apt sources on this machine for mmdebstrap")
	}
	return out, nil
}

// golangContext is the golang stand-in's build context: its recipe and a copy of this machine's
// GOROOT as go/.
func golangContext(ctx context.Context, log *slog.Logger, recipe, workDir string) (string, error) {
	dir := filepath.Join(workDir, "golang-context")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("golang context: %w", err)
	}
	goroot, err := goEnv(ctx, log, "GOROOT")
	if err != nil {
		return "", err
	}
	if _, err := command(ctx, log, "", nil, nil, "cp", "-a", filepath.Join(recipe, "Dockerfile"), goroot, dir); err != nil {
		return "", err
	}
	if base := filepath.Base(goroot); base != "go" {
		if err := os.Rename(filepath.Join(dir, base), filepath.Join(dir, "go")); err != nil {
			return "", fmt.Errorf("golang context: %w", err)
		}
	}
	return dir, nil
}

// goEnv is one variable of `go env`: the toolchain that runs this check is the one the golang
// stand-in gets.
func goEnv(ctx context.Context, log *slog.Logger, name string) (string, error) {
	out, err := command(ctx, log, "", nil, nil, "go", "env", name)
	return strings.TrimSpace(out), err
}

// hashDir hashes the names and contents of every file under dir.
func hashDir(dir string) (string, error) {
	var parts []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := e.Info()
		parts = append(parts, fmt.Sprintf("%s %o %x", strings.TrimPrefix(path, dir), info.Mode().Perm(), sha256.Sum256(b)))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", dir, err)
	}
	sort.Strings(parts)
	return hashStrings(parts), nil
}

func hashStrings(parts []string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
