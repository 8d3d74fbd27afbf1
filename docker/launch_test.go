package docker_test

import (
	"strconv"
	"testing"

	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

// TestComposeStartsDaemonsAsLaunchDescribes checks docker-compose.yml against internal/launch,
// the one description the test harness and devcluster start daemons from: each daemon service
// runs the right binary, sets through <BINARY>_<FLAG> every flag launch gives an instance (its
// port from the topology, advertised under its service name, ZooKeeper and the database by
// their compose names), and is health-checked at launch's readiness path.
func TestComposeStartsDaemonsAsLaunchDescribes(t *testing.T) {
	p := loadProject(t)
	started := map[string]bool{}
	for _, n := range cluster.Topology {
		prog, ok := launch.ByBinary(string(n.Program))
		if !ok {
			continue
		}
		started[prog.Binary] = true
		s, ok := p.Services[n.Name]
		if !ok {
			t.Errorf("daemon %s: no compose service", n.Name)
			continue
		}
		if len(s.Command) == 0 || s.Command[0] != prog.Binary {
			t.Errorf("service %s: command %q, want %s", n.Name, s.Command, prog.Binary)
		}
		port := strconv.Itoa(n.Port)
		want := prog.Env(launch.Instance{
			Listen: "0.0.0.0:" + port, Advertise: n.Name + ":" + port, ZK: "zookeeper:2181",
			DB: launch.Account{User: "zkpost", Password: "zkpost", Name: "zkpost"},
		})
		for k, v := range want {
			got := s.Environment[k]
			if got == nil || *got != v {
				t.Errorf("service %s: %s=%v, want %q", n.Name, k, deref(got), v)
			}
		}
		ready := prog.ReadyURL("127.0.0.1:" + port)
		if hc := s.HealthCheck; hc == nil || len(hc.Test) != 3 || hc.Test[1] != "healthcheck" || hc.Test[2] != ready {
			t.Errorf("service %s: healthcheck %+v, want [CMD healthcheck %s]", n.Name, hc, ready)
		}
	}
	for _, prog := range launch.Daemons {
		if !started[prog.Binary] {
			t.Errorf("%s: no node of the topology runs it", prog.Binary)
		}
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
