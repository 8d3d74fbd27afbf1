package discovery

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestParseCacheNode(t *testing.T) {
	for _, tc := range []struct {
		node, data string
		want       CacheNode
		wantErr    bool
	}{
		{node: "redis1:127.0.0.1:6379", want: CacheNode{Name: "redis1", Addr: "127.0.0.1:6379", Status: StatusAlive}},
		{node: "redis1:127.0.0.1:6379", data: " \n", want: CacheNode{Name: "redis1", Addr: "127.0.0.1:6379", Status: StatusAlive}},
		{node: "r:[::1]:6379", data: `{"status":"down","epoch":3}`, want: CacheNode{Name: "r", Addr: "[::1]:6379", Status: StatusDown, Epoch: 3}},
		{node: "r:h:1", data: `{"epoch":2}`, want: CacheNode{Name: "r", Addr: "h:1", Status: StatusAlive, Epoch: 2}},
		{node: "127.0.0.1:6379", wantErr: true}, // no name: the address splits wrong
		{node: ":h:1", wantErr: true},
		{node: "redis1", wantErr: true},
		{node: "r:h:0", wantErr: true},
		{node: "r:h:1", data: "ALIVE", wantErr: true},
	} {
		got, err := ParseCacheNode(tc.node, []byte(tc.data))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseCacheNode(%q, %q): got %+v, %v; want %+v, error %v", tc.node, tc.data, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseQueueAndDB(t *testing.T) {
	q, err := ParseQueue([]byte(`{"primary":"a:1","secondary":["b:2"]}`))
	if want := (QueueEndpoints{Primary: "a:1", Secondary: []string{"b:2"}}); err != nil || !reflect.DeepEqual(q, want) {
		t.Errorf("ParseQueue: got %+v, %v; want %+v", q, err, want)
	}
	d, err := ParseDB([]byte(`{"primary":"a:1","replicas":["b:2","c:3"]}`))
	if want := (DBEndpoints{Primary: "a:1", Replicas: []string{"b:2", "c:3"}}); err != nil || !reflect.DeepEqual(d, want) {
		t.Errorf("ParseDB: got %+v, %v; want %+v", d, err, want)
	}
	for _, data := range []string{``, `{}`, `{"primary":""}`, `[]`, `{"primary":1}`} {
		if _, err := ParseQueue([]byte(data)); err == nil {
			t.Errorf("ParseQueue(%q): got no error, want one", data)
		}
		if _, err := ParseDB([]byte(data)); err == nil {
			t.Errorf("ParseDB(%q): got no error, want one", data)
		}
	}
}

// FuzzParseNodes feeds the parsers of node names and data that other tools (zoo_setup, redismon,
// an operator's zkCli) write: none may panic, and what they accept must be self-consistent.
func FuzzParseNodes(f *testing.F) {
	for _, s := range [][2]string{
		{"redis1:127.0.0.1:6379", ""},
		{"redis1:[::1]:6379", `{"status":"DOWN","epoch":7}`},
		{"x:y", `{"primary":"127.0.0.1:6380","secondary":["127.0.0.1:6381"]}`},
		{"127.0.0.1:3306", `{"primary":"127.0.0.1:3306","replicas":["127.0.0.1:3307"]}`},
		{"a:b:99999", `{"status":7}`},
		{"::", `null`},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, node string, data []byte) {
		if ep, err := ParseEndpoint(node); err == nil {
			if ep.Host == "" || ep.Port < 1 || ep.Port > 65535 {
				t.Fatalf("ParseEndpoint(%q): got %+v, want a host and a port 1-65535", node, ep)
			}
			if back, err := ParseEndpoint(ep.String()); err != nil || back != ep {
				t.Fatalf("ParseEndpoint(%q).String() = %q reparses as %+v, %v; want %+v", node, ep.String(), back, err, ep)
			}
			if utf8.ValidString(node) { // JSON would replace invalid UTF-8, and hosts are ASCII
				checkServerSet(t, node, ep)
			}
		}
		if n, err := ParseCacheNode(node, data); err == nil {
			if n.Name == "" || n.Status == "" || CacheNodeName(n.Name, n.Addr) != node {
				t.Fatalf("ParseCacheNode(%q, %q): got %+v, want a name, a status and the node name back", node, data, n)
			}
		}
		if q, err := ParseQueue(data); err == nil && q.Primary == "" {
			t.Fatalf("ParseQueue(%q): got %+v with no primary and no error", data, q)
		}
		if d, err := ParseDB(data); err == nil && d.Primary == "" {
			t.Fatalf("ParseDB(%q): got %+v with no primary and no error", data, d)
		}
	})
}

// checkServerSet fails unless the serverset written for hostport reads back as ep.
func checkServerSet(t *testing.T, hostport string, ep Endpoint) {
	t.Helper()
	b, err := NewServerSet(hostport, 3)
	if err != nil {
		t.Fatalf("NewServerSet(%q): %v", hostport, err)
	}
	var ss ServerSet
	if err := json.Unmarshal(b, &ss); err != nil || ss.ServiceEndpoint != ep || ss.AdditionalEndpoints["http"] != ep || ss.Shard != 3 {
		t.Fatalf("NewServerSet(%q) = %s (%v), want endpoint %+v and shard 3", hostport, b, err, ep)
	}
}
