package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseSetup(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"full", `{"cache":["redis1:127.0.0.1:16380"],"queue":{"primary":"127.0.0.1:16379","secondary":["127.0.0.1:16383"]},"db":{"primary":"127.0.0.1:13306","replicas":[]}}`, ""},
		{"empty object", `{}`, ""},
		{"queue only, no secondary", `{"queue":{"primary":"127.0.0.1:16379"}}`, ""},
		{"unknown key", `{"caches":["redis1:127.0.0.1:16380"]}`, "unknown field"},
		{"bad shard", `{"cache":["redis1"]}`, "want name:host:port"},
		{"bad shard port", `{"cache":["redis1:127.0.0.1:0"]}`, "want host:port"},
		{"slash in name", `{"cache":["a/b:127.0.0.1:1"]}`, "must not contain"},
		{"duplicate name", `{"cache":["r:127.0.0.1:1","r:127.0.0.1:2"]}`, "listed twice"},
		{"duplicate addr", `{"cache":["a:127.0.0.1:1","b:127.0.0.1:1"]}`, "listed twice"},
		{"queue without primary", `{"queue":{"secondary":["127.0.0.1:1"]}}`, "primary is required"},
		{"queue primary also secondary", `{"queue":{"primary":"127.0.0.1:1","secondary":["127.0.0.1:1"]}}`, "listed twice"},
		{"db bad replica", `{"db":{"primary":"127.0.0.1:1","replicas":["nope"]}}`, "db:"},
		{"trailing data", `{} {}`, "trailing"},
		{"queue on a cache shard", `{"cache":["redis1:127.0.0.1:16380"],"queue":{"primary":"127.0.0.1:16379","secondary":["127.0.0.1:16380"]}}`, "also a cache shard"},
		{"not JSON", `cache=redis1`, "parsing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSetup([]byte(tc.in))
			if tc.wantErr == "" && err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// The shipped example must parse and use the default ports of docs/operations.md#ports.
func TestExampleFile(t *testing.T) {
	b, err := os.ReadFile("example.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSetup(b)
	if err != nil {
		t.Fatalf("example.json: %v", err)
	}
	wantCache := []string{"redis1:127.0.0.1:16380", "redis2:127.0.0.1:16381", "redis3:127.0.0.1:16382"}
	if !slices.Equal(s.Cache, wantCache) {
		t.Errorf("got cache %v, want %v", s.Cache, wantCache)
	}
	if s.Queue.Primary != "127.0.0.1:16379" || !slices.Equal(s.Queue.Secondary, []string{"127.0.0.1:16383"}) {
		t.Errorf("got queue %+v, want primary 16379, secondary 16383", *s.Queue)
	}
	if s.DB.Primary != "127.0.0.1:13306" || !slices.Equal(s.DB.Replicas, []string{"127.0.0.1:13307"}) {
		t.Errorf("got db %+v, want primary 13306, replica 13307", *s.DB)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	file := []byte(`{"cache":["redis1:127.0.0.1:16380"],"queue":{"primary":"127.0.0.1:16379"}}`)
	f := flagSetup{file: "x.json", cache: "a:127.0.0.1:1, b:127.0.0.1:2", dbPrimary: "127.0.0.1:3"}
	s, err := f.setup(func(string) ([]byte, error) { return file, nil })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:127.0.0.1:1", "b:127.0.0.1:2"}; !slices.Equal(s.Cache, want) {
		t.Errorf("got cache %v, want %v", s.Cache, want)
	}
	if s.Queue == nil || s.Queue.Primary != "127.0.0.1:16379" {
		t.Errorf("got queue %+v, want the file's", s.Queue)
	}
	if s.DB == nil || s.DB.Primary != "127.0.0.1:3" || len(s.DB.Replicas) != 0 {
		t.Errorf("got db %+v, want primary 127.0.0.1:3 and no replicas", s.DB)
	}
}

func TestSequence(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"n_0000000007", 7},
		{"_c_0123456789abcdef0123456789abcdef-n_0000000012", 12},
		{"short", -1},
		{"n_00000000x1", -1},
	}
	for _, tc := range tests {
		if got := sequence(tc.in); got != tc.want {
			t.Errorf("sequence(%q): got %d, want %d", tc.in, got, tc.want)
		}
	}
}

func FuzzParseSetup(f *testing.F) {
	f.Add([]byte(`{"cache":["redis1:127.0.0.1:16380"],"queue":{"primary":"127.0.0.1:16379","secondary":["127.0.0.1:16383"]}}`))
	f.Add([]byte(`{"db":{"primary":"[::1]:3306","replicas":null}}`))
	f.Add([]byte(`{"cache":[":::"]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSetup(b)
		if err != nil {
			return
		}
		// Whatever parses must validate and name only well-formed shards.
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed setup does not validate: %v", err)
		}
		for _, c := range s.Cache {
			if _, err := parseShard(c); err != nil {
				t.Fatalf("accepted bad shard %q: %v", c, err)
			}
		}
	})
}
