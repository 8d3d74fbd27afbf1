package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func ptr(s string) *string { return &s }

func TestCompareMembers(t *testing.T) {
	want := map[string]string{"guid-1:8010": "guid-1", "postsvc-1:8000": "postsvc-1"}
	alive := func(host string, port int) zkMember {
		return zkMember{Node: "member_1", Host: host, Port: port, Status: "ALIVE"}
	}
	cases := []struct {
		name     string
		services map[string][]zkMember
		wantErr  string
	}{
		{"all registered", map[string][]zkMember{"guid": {alive("guid-1", 8010)}, "postsvc": {alive("postsvc-1", 8000)}}, ""},
		{"one missing", map[string][]zkMember{"guid": {alive("guid-1", 8010)}}, "postsvc-1 (postsvc-1:8000) is not registered"},
		{"a stranger", map[string][]zkMember{"guid": {alive("guid-1", 8010), alive("guid-9", 8019)}, "postsvc": {alive("postsvc-1", 8000)}}, "which no service advertises"},
		{"twice", map[string][]zkMember{"guid": {alive("guid-1", 8010), alive("guid-1", 8010)}, "postsvc": {alive("postsvc-1", 8000)}}, "registered twice"},
		{"not alive", map[string][]zkMember{"guid": {{Node: "m", Host: "guid-1", Port: 8010, Status: "DEAD"}}, "postsvc": {alive("postsvc-1", 8000)}}, "guid-1:8010 is DEAD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := compareMembers(zkTree{Services: c.services}, want)
			checkErr(t, err, c.wantErr)
		})
	}
	if err := compareMembers(zkTree{}, map[string]string{}); err == nil {
		t.Error("got nil with nothing advertised, want an error")
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("got %v, want nil", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("got %v, want an error containing %q", err, want)
	}
}

func targets(specs ...[3]string) promTargets {
	var t promTargets
	for _, s := range specs {
		labels := map[string]string{"__address__": s[0]}
		if s[2] == "serverset" {
			labels["__meta_serverset_path"] = "/the_red/my_service/guid/nodes/member_1"
		}
		t.Data.ActiveTargets = append(t.Data.ActiveTargets, struct {
			DiscoveredLabels map[string]string `json:"discoveredLabels"`
			ScrapePool       string            `json:"scrapePool"`
			ScrapeURL        string            `json:"scrapeUrl"`
			Health           string            `json:"health"`
			LastError        string            `json:"lastError"`
		}{DiscoveredLabels: labels, ScrapePool: "guid", ScrapeURL: "http://" + s[0] + "/metrics", Health: s[1]})
	}
	return t
}

func TestJudgeTargets(t *testing.T) {
	tree := zkTree{Services: map[string][]zkMember{"guid": {{Host: "guid-1", Port: 8010}}}}
	cases := []struct {
		name    string
		t       promTargets
		wantErr string
	}{
		{"up and discovered", targets([3]string{"guid-1:8010", "up", "serverset"}, [3]string{"localhost:9090", "up", "static"}), ""},
		{"a target down", targets([3]string{"guid-1:8010", "down", "serverset"}), `is "down"`},
		{"a static target down", targets([3]string{"guid-1:8010", "up", "serverset"}, [3]string{"exporter:9100", "unknown", "static"}), `is "unknown"`},
		{"member not discovered", targets([3]string{"guid-1:8010", "up", "static"}), "not a serverset target"},
		{"nothing", targets(), "no target found through ZooKeeper"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkErr(t, judgeTargets(c.t, tree), c.wantErr) })
	}
}

func TestValidateOffline(t *testing.T) {
	ok := project{Services: map[string]service{
		"redis1": {Image: "zkpost-standin/redis:test"},
		"guid-1": {Image: projectImage},
	}}
	checkErr(t, validateOffline(ok), "")
	public := project{Services: map[string]service{"redis1": {Image: "redis:7.2-alpine"}}}
	checkErr(t, validateOffline(public), `redis1 runs "redis:7.2-alpine"`)
	published := project{Services: map[string]service{"guid-1": {Image: projectImage, Ports: []json.RawMessage{json.RawMessage(`{}`)}}}}
	checkErr(t, validateOffline(published), "guid-1 publishes ports")
}

func TestSessionTimeout(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]*string
		want    time.Duration
		wantErr bool
	}{
		{"the flag's default", nil, 10 * time.Second, false},
		{"from the environment", map[string]*string{"GUIDD_ZK_SESSION_TIMEOUT": ptr("4s")}, 4 * time.Second, false},
		{"not a duration", map[string]*string{"GUIDD_ZK_SESSION_TIMEOUT": ptr("soon")}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := sessionTimeout(service{Command: []string{"guidd"}, Environment: c.env})
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestAdvertised(t *testing.T) {
	p := project{Services: map[string]service{
		"guid-1":    {Environment: map[string]*string{"GUIDD_ADVERTISE": ptr("guid-1:8010"), "GUIDD_DC": ptr("0")}},
		"workwebui": {Environment: map[string]*string{"WORKWEBUI_LISTEN": ptr("0.0.0.0:5040")}},
	}}
	got := advertised(p)
	if len(got) != 1 || got["guid-1:8010"] != "guid-1" {
		t.Errorf("got %v, want only guid-1:8010 from guid-1", got)
	}
}

func TestReportEndsWithTheSummary(t *testing.T) {
	var out bytes.Buffer
	r := &report{out: &out}
	r.check("one", nil)
	r.check("two", errors.New("broken"))
	r.check("three", nil)
	r.summary()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if got, want := lines[len(lines)-1], "2 passed, 1 failed"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	if lines[1] != "FAIL two: broken" {
		t.Errorf("got %q, want the failure with its reason", lines[1])
	}
}

func TestRedismonCandidatesCountAsMembers(t *testing.T) {
	var tree zkTree
	tree.Redismon.Candidates = []string{"redismon-1:8040"}
	want := map[string]string{"redismon-1:8040": "redismon-1"}
	checkErr(t, compareMembers(tree, want), "")
	tree.Problems = []string{"cache node x: bad json"}
	checkErr(t, compareMembers(tree, want), "bad json")
}
