package docker_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

// repoRoot is the module root, seen from this package's directory.
const repoRoot = ".."

// ourBinaries maps each binary of our image to its package.
var ourBinaries = map[string]string{
	"guidd":       "./guid/cmd/guidd",
	"scrapd":      "./scrap/cmd/scrapd",
	"postsvcd":    "./postsvc/cmd/postsvcd",
	"writebackd":  "./writeback/cmd/writebackd",
	"zoo_setup":   "./tools/zoo_setup",
	"redismon":    "./tools/redismon",
	"workwebui":   "./tools/workwebui",
	"loadgen":     "./tools/loadgen",
	"healthcheck": "./docker/healthcheck",
	"zkexporter":  "./tools/zkexporter",
}

// designPorts are the published ports of docs/operations.md#ports, by service.
var designPorts = map[string][]string{
	"zookeeper": {"2181"},
	"redis1":    {"16380"}, "redis2": {"16381"}, "redis3": {"16382"},
	"queue-primary": {"16379"}, "queue-replica": {"16383"},
	"mariadb-primary": {"13306"}, "mariadb-replica": {"13307"},
	"postsvc-1": {"8000"}, "postsvc-2": {"8001"},
	"guid-1": {"8010"}, "guid-2": {"8011"}, "guid-3": {"8012"},
	"scrap-1": {"8020"}, "scrap-2": {"8021"},
	"writeback-1": {"8030"}, "writeback-2": {"8031"},
	"workwebui":  {"5040"},
	"prometheus": {"9090"},
}

func loadProject(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yml")},
		cli.WithWorkingDirectory(repoRoot), cli.WithName("zkpost"), cli.WithInterpolation(true))
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	return p
}

func ours(s types.ServiceConfig) bool { return s.Build != nil }

func TestComposeParsesWithTheWholeTopology(t *testing.T) {
	p := loadProject(t)
	var want []string
	for _, n := range cluster.Topology {
		want = append(want, n.Name)
	}
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s of devcluster's topology is missing from docker-compose.yml", name)
		}
	}
}

func TestEveryServiceHasAHealthcheck(t *testing.T) {
	for name, s := range loadProject(t).Services {
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("service %s: got healthcheck %+v, want a test command", name, s.HealthCheck)
		}
	}
}

func TestDependenciesWaitForHealth(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
			want := types.ServiceConditionHealthy
			if dep == "zoo_setup" {
				want = types.ServiceConditionCompletedSuccessfully // a one-shot
			}
			if d.Condition != want {
				t.Errorf("service %s depends on %s with condition %q, want %q", name, dep, d.Condition, want)
			}
		}
		if ours(s) && name != "zoo_setup" {
			if _, ok := s.DependsOn["zoo_setup"]; !ok {
				t.Errorf("service %s does not wait for zoo_setup", name)
			}
		}
	}
}

func TestPublishedPortsMatchTheDesign(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		var got []string
		for _, port := range s.Ports {
			got = append(got, port.Published)
			if port.HostIP != "127.0.0.1" {
				t.Errorf("service %s publishes %s on %q, want the host's loopback 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
		sort.Strings(got)
		if want := designPorts[name]; !slices.Equal(got, want) {
			t.Errorf("service %s publishes %v, want %v (docs/operations.md#ports)", name, got, want)
		}
	}
	// devcluster runs the same topology on the same ports.
	for _, n := range cluster.Topology {
		if want := designPorts[n.Name]; n.Port != 0 && len(want) == 1 && want[0] != strconv.Itoa(n.Port) && n.Program != cluster.ProgRedismon {
			t.Errorf("devcluster node %s uses port %d, compose publishes %s", n.Name, n.Port, want[0])
		}
	}
}

var flagLine = regexp.MustCompile(`^\s+-([a-z0-9][a-z0-9-]*)`)

// flagsOf runs bin -h and returns the flag names it lists.
func flagsOf(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero by design
	flags := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = true
		}
	}
	if len(flags) == 0 {
		t.Fatalf("%s -h listed no flags:\n%s", bin, out)
	}
	return flags
}

func TestEnvironmentNamesRealFlags(t *testing.T) {
	p := loadProject(t)
	flags := map[string]map[string]bool{}
	for name, s := range p.Services {
		if !ours(s) {
			continue
		}
		if len(s.Command) == 0 {
			t.Errorf("service %s: no command naming the binary", name)
			continue
		}
		binary := s.Command[0]
		pkg, ok := ourBinaries[binary]
		if !ok {
			t.Errorf("service %s runs %q, which is not one of our binaries", name, binary)
			continue
		}
		if flags[binary] == nil {
			flags[binary] = flagsOf(t, itest.BuildBinary(t, pkg))
		}
		prefix := strings.ToUpper(binary) + "_"
		for key := range s.Environment {
			flag, ok := strings.CutPrefix(key, prefix)
			if !ok {
				t.Errorf("service %s: %s does not start with %s, so %s ignores it", name, key, prefix, binary)
				continue
			}
			flag = strings.ReplaceAll(strings.ToLower(flag), "_", "-")
			if !flags[binary][flag] {
				t.Errorf("service %s: %s names --%s, which %s does not accept", name, key, flag, binary)
			}
		}
		for _, arg := range s.Command[1:] {
			if f, ok := strings.CutPrefix(strings.TrimLeft(arg, "-"), ""); ok && strings.HasPrefix(arg, "-") {
				f, _, _ = strings.Cut(f, "=")
				if !flags[binary][f] {
					t.Errorf("service %s: command flag %s is not accepted by %s", name, arg, binary)
				}
			}
		}
	}
}

// dockerfile returns the Dockerfile's logical lines (continuations joined).
func dockerfile(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.ReplaceAll(string(b), "\\\n", " ")
	var lines []string
	for _, l := range strings.Split(joined, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestDockerfileCopiesExistingPaths(t *testing.T) {
	n := 0
	for _, l := range dockerfile(t) {
		fields := strings.Fields(l)
		if !strings.EqualFold(fields[0], "COPY") {
			continue
		}
		args := fields[1:]
		if len(args) > 0 && strings.HasPrefix(args[0], "--from") {
			continue // copies from a build stage, not the context
		}
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		for _, src := range args[:len(args)-1] {
			n++
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("Dockerfile: COPY %s: %v", src, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("found no COPY from the build context")
	}
}

func TestDockerfileBuildsEveryBinaryTheComposeFileRuns(t *testing.T) {
	built := map[string]bool{}
	for _, l := range dockerfile(t) {
		if !strings.Contains(l, "go build") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "./") {
				if _, err := os.Stat(filepath.Join(repoRoot, f)); err != nil {
					t.Errorf("Dockerfile builds %s: %v", f, err)
				}
				built[filepath.Base(f)] = true
			}
		}
	}
	for name, s := range loadProject(t).Services {
		if !ours(s) {
			continue
		}
		uses := []string{s.Command[0]}
		if s.HealthCheck != nil && len(s.HealthCheck.Test) > 1 {
			uses = append(uses, s.HealthCheck.Test[1])
		}
		for _, b := range uses {
			if !built[b] {
				t.Errorf("service %s runs %s, which the Dockerfile does not build (built: %v)", name, b, built)
			}
		}
	}
}

func TestBindMountsExist(t *testing.T) {
	for name, s := range loadProject(t).Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s: %v", name, v.Source, err)
			}
		}
	}
}

func TestPrometheusDiscoversEveryServiceFromZooKeeper(t *testing.T) {
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	if strings.Contains(cfg, "static_configs") && strings.Count(cfg, "static_configs") > 1 {
		t.Errorf("prometheus.yml lists static targets beyond Prometheus itself")
	}
	jobs := append(slices.Clone(cluster.ServiceDirs), cluster.ExporterDirs...)
	for _, svc := range jobs {
		for _, want := range []string{"job_name: " + svc, `"/the_red/my_service/` + svc + `/nodes"`} {
			if !strings.Contains(cfg, want) {
				t.Errorf("prometheus.yml lacks %s", want)
			}
		}
	}
	if got := strings.Count(cfg, "serverset_sd_configs"); got != len(jobs) {
		t.Errorf("got %d serverset_sd_configs, want %d", got, len(jobs))
	}
}

// loadWithStandins loads the compose file with compose-check's override over it.
func loadWithStandins(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yml"),
		filepath.Join(repoRoot, "docker", "standin", "compose.yml")},
		cli.WithWorkingDirectory(repoRoot), cli.WithName("zkpost-check"), cli.WithInterpolation(true))
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading docker-compose.yml with docker/standin/compose.yml: %v", err)
	}
	return p
}

// compose-check runs every public image's stand-in and takes no host port; a service added to
// docker-compose.yml without its override line would pull from a registry or clash on a port.
func TestStandinOverrideCoversEveryService(t *testing.T) {
	for name, s := range loadWithStandins(t).Services {
		if !ours(s) && !strings.HasPrefix(s.Image, "zkpost-standin/") {
			t.Errorf("service %s runs %q under compose-check, want a zkpost-standin/ image", name, s.Image)
		}
		if len(s.Ports) > 0 {
			t.Errorf("service %s publishes %v under compose-check, want nothing", name, s.Ports)
		}
		if s.PullPolicy != types.PullPolicyNever {
			t.Errorf("service %s has pull_policy %q under compose-check, want never", name, s.PullPolicy)
		}
	}
}

// portableHealthcheckCommands behave the same in the official images and in compose-check's
// stand-ins; a script of one image (healthcheck.sh, zkServer.sh) would be tested only by copying it.
var portableHealthcheckCommands = []string{"healthcheck", "zoo_setup", "bash", "mariadb", "mariadb-admin", "redis-cli", "wget"}

func TestHealthchecksUsePortableCommands(t *testing.T) {
	for name, s := range loadProject(t).Services {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
			continue // TestEveryServiceHasAHealthcheck reports it
		}
		first := s.HealthCheck.Test[1]
		if s.HealthCheck.Test[0] == "CMD-SHELL" {
			first = strings.Fields(first)[0]
		}
		if !slices.Contains(portableHealthcheckCommands, first) {
			t.Errorf("service %s: healthcheck runs %q, want one of %v", name, first, portableHealthcheckCommands)
		}
	}
}

// Every stand-in recipe says what it is, so that nobody takes it for the real image.
func TestStandinRecipesSayTheyAreStandins(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("standin", "*", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no stand-in recipes: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "STAND-IN") {
			t.Errorf("%s does not say it is a STAND-IN", f)
		}
	}
}
