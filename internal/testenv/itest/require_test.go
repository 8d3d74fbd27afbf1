package itest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// recordTB records Fatalf and Skipf instead of ending the test.
type recordTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recordTB) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

func TestRequire(t *testing.T) {
	const absent = "itest-no-such-binary"
	tests := []struct {
		name      string
		ci        string
		wantFatal bool
	}{
		{"skips locally", "", false},
		{"fails in CI", "true", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			rec := &recordTB{TB: t}
			if got := itest.Require(rec, absent); got != "" {
				t.Fatalf("Require(%q) = %q, want empty", absent, got)
			}
			if gotFatal := rec.fatal != ""; gotFatal != tt.wantFatal || (rec.skip != "") == tt.wantFatal {
				t.Fatalf("got fatal=%q skip=%q, want fatal=%v", rec.fatal, rec.skip, tt.wantFatal)
			}
			if !strings.Contains(rec.fatal+rec.skip, "apt-get install") {
				t.Fatalf("message %q lacks the apt-get hint", rec.fatal+rec.skip)
			}
		})
	}
	if p := itest.Require(t, "redis-server"); !strings.HasPrefix(p, "/") {
		t.Fatalf("Require(redis-server) = %q, want an absolute path", p)
	}
}
