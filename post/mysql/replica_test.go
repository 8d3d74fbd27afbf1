package mysql

import (
	"database/sql"
	"testing"
	"time"
)

func TestLagOf(t *testing.T) {
	v := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	null := sql.NullString{}
	for _, tc := range []struct {
		name      string
		cols      []string
		vals      []sql.NullString
		wantLag   time.Duration
		wantKnown bool
		wantErr   bool
	}{
		{"MariaDB", []string{"Slave_IO_State", "Seconds_Behind_Master"}, []sql.NullString{v("x"), v("3")}, 3 * time.Second, true, false},
		{"MySQL 8 under SHOW REPLICA STATUS", []string{"Seconds_Behind_Source"}, []sql.NullString{v("0")}, 0, true, false},
		{"the newer name wins", []string{"Seconds_Behind_Master", "Seconds_Behind_Source"}, []sql.NullString{v("9"), v("1")}, time.Second, true, false},
		{"NULL: a replication thread is stopped", []string{"Seconds_Behind_Master"}, []sql.NullString{null}, 0, false, false},
		{"not a number", []string{"Seconds_Behind_Master"}, []sql.NullString{v("soon")}, 0, false, true},
		{"no lag column", []string{"Slave_IO_State"}, []sql.NullString{v("x")}, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lag, known, err := lagOf(tc.cols, tc.vals)
			if lag != tc.wantLag || known != tc.wantKnown || (err != nil) != tc.wantErr {
				t.Errorf("got %s, %v, %v; want %s, %v, error %v", lag, known, err, tc.wantLag, tc.wantKnown, tc.wantErr)
			}
		})
	}
}

// FuzzLagOf: whatever a server answers, lagOf returns a lag only when it knows one.
func FuzzLagOf(f *testing.F) {
	f.Add("Seconds_Behind_Master", "12", true)
	f.Add("Seconds_Behind_Source", "-1", true)
	f.Add("Seconds_Behind_Master", "", false)
	f.Add("Other", "1", true)
	f.Fuzz(func(t *testing.T, col, val string, valid bool) {
		lag, known, err := lagOf([]string{col}, []sql.NullString{{String: val, Valid: valid}})
		if (err != nil || !known) && lag != 0 {
			t.Fatalf("lagOf(%q, %q, %v): got lag %s with known %v, err %v; want 0", col, val, valid, lag, known, err)
		}
	})
}
