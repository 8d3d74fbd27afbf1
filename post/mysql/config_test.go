package mysql_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/the-red/zkpost/internal/flagenv"
	"github.com/the-red/zkpost/post/mysql"
)

func TestConfigFlagsMaskPassword(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var c mysql.Config
	c.RegisterFlags(fs)
	env := map[string]string{"WRITEBACKD_DB_PASSWORD": "hunter2"}
	if err := flagenv.Parse(fs, "writebackd", []string{"--db-user", "u"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.User != "u" || c.Password != "hunter2" || c.Name != "zkpost" {
		t.Errorf("config = user %q, password %q, name %q; want u, hunter2, zkpost", c.User, c.Password, c.Name)
	}
	if desc := fmt.Sprint(flagenv.Describe(fs)...); strings.Contains(desc, "hunter2") {
		t.Errorf("Describe leaks the password: %s", desc)
	}
	dsn := mysql.DSN(c, "10.0.0.1:3306")
	for _, want := range []string{"u:hunter2@tcp(10.0.0.1:3306)/zkpost?", "parseTime=true", "interpolateParams=true", "time_zone="} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN %q lacks %q", dsn, want)
		}
	}
}
