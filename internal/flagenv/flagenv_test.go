package flagenv

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	for _, tc := range []struct{ bin, flag, want string }{
		{"postsvcd", "zk", "POSTSVCD_ZK"},
		{"postsvcd", "zk-root", "POSTSVCD_ZK_ROOT"},
		{"zoo_setup", "queue-primary", "ZOO_SETUP_QUEUE_PRIMARY"},
	} {
		if got := EnvName(tc.bin, tc.flag); got != tc.want {
			t.Errorf("EnvName(%q, %q): got %q, want %q", tc.bin, tc.flag, got, tc.want)
		}
	}
}

func TestParsePrecedence(t *testing.T) {
	env := map[string]string{"GUIDD_ZK": "env:2181", "GUIDD_DC": "7", "GUIDD_LISTEN": "env:1"}
	fs := flag.NewFlagSet("guidd", flag.ContinueOnError)
	zk := fs.String("zk", "default:2181", "")
	dc := fs.Int("dc", 0, "")
	listen := fs.String("listen", "0.0.0.0:8010", "")
	root := fs.String("zk-root", "/r", "")
	if err := Parse(fs, "guidd", []string{"--listen", "flag:2"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"zk (env beats default)", *zk, "env:2181"},
		{"listen (flag beats env)", *listen, "flag:2"},
		{"zk-root (default)", *root, "/r"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if *dc != 7 {
		t.Errorf("dc: got %d, want 7", *dc)
	}
}

func TestParseBadEnvValue(t *testing.T) {
	fs := flag.NewFlagSet("guidd", flag.ContinueOnError)
	fs.Duration("timeout", time.Second, "")
	err := Parse(fs, "guidd", nil, func(k string) string {
		if k == "GUIDD_TIMEOUT" {
			return "soon"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "GUIDD_TIMEOUT") {
		t.Fatalf("got %v, want an error naming GUIDD_TIMEOUT", err)
	}
}

func TestDescribeMasksSecrets(t *testing.T) {
	fs := flag.NewFlagSet("postsvcd", flag.ContinueOnError)
	fs.String("db-password", "hunter2", "")
	fs.String("db-user", "zkpost", "")
	fs.String("empty-secret", "", "")
	got := map[string]any{}
	kv := Describe(fs, "db-password", "empty-secret")
	for i := 0; i < len(kv); i += 2 {
		got[kv[i].(string)] = kv[i+1]
	}
	if got["db-password"] != "********" || got["db-user"] != "zkpost" || got["empty-secret"] != "" {
		t.Errorf("got %v, want the password masked, the user shown, an empty secret left empty", got)
	}
}
