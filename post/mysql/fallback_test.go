package mysql

import (
	"database/sql"
	"log/slog"
	"testing"
	"time"
)

func TestBinlogPosAfter(t *testing.T) {
	for _, tc := range []struct {
		p, q binlogPos
		want bool
	}{
		{binlogPos{"bin.000002", 10}, binlogPos{"bin.000002", 9}, true},
		{binlogPos{"bin.000002", 9}, binlogPos{"bin.000002", 10}, false},
		{binlogPos{"bin.000002", 9}, binlogPos{"bin.000002", 9}, false},
		{binlogPos{"bin.000010", 4}, binlogPos{"bin.000009", 900}, true},
		{binlogPos{"bin.999999", 4}, binlogPos{"bin.1000000", 4}, false}, // the sequence is a number
		{binlogPos{"bin.000001", 4}, binlogPos{}, true},
		{binlogPos{}, binlogPos{"bin.000001", 4}, false},
		{binlogPos{"a.000002", 4}, binlogPos{"b.000001", 4}, false}, // different logs: incomparable
		{binlogPos{"b.000001", 4}, binlogPos{"a.000002", 4}, false},
		{binlogPos{"nodot", 5}, binlogPos{"other", 4}, false},
	} {
		if got := tc.p.after(tc.q); got != tc.want {
			t.Errorf("%v.after(%v) = %v, want %v", tc.p, tc.q, got, tc.want)
		}
	}
}

func TestStateOf(t *testing.T) {
	v := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	null := sql.NullString{}
	for _, tc := range []struct {
		name string
		cols []string
		vals []sql.NullString
		want replicaState
	}{
		{"MariaDB, primary dead",
			[]string{"Relay_Master_Log_File", "Slave_IO_Running", "Slave_SQL_Running", "Exec_Master_Log_Pos", "Seconds_Behind_Master"},
			[]sql.NullString{v("mysql-bin.000003"), v("Connecting"), v("Yes"), v("1234"), null},
			replicaState{configured: true, sqlRunning: true, applied: binlogPos{"mysql-bin.000003", 1234}}},
		{"MySQL 8 names, caught up",
			[]string{"Relay_Source_Log_File", "Replica_SQL_Running", "Exec_Source_Log_Pos", "Seconds_Behind_Source"},
			[]sql.NullString{v("binlog.000001"), v("Yes"), v("99"), v("0")},
			replicaState{configured: true, lagKnown: true, sqlRunning: true, applied: binlogPos{"binlog.000001", 99}}},
		{"SQL thread stopped, position unparsable",
			[]string{"Slave_SQL_Running", "Exec_Master_Log_Pos", "Relay_Master_Log_File", "Seconds_Behind_Master"},
			[]sql.NullString{v("No"), v("x"), v("f.1"), v("2")},
			replicaState{configured: true, lag: 2 * time.Second, lagKnown: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stateOf(tc.cols, tc.vals)
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := stateOf([]string{"Slave_SQL_Running"}, []sql.NullString{v("Yes")}); err == nil {
		t.Error("stateOf without a lag column: got no error")
	}
}

// TestFallbackChoice drives fallbackLocked with set health state (no servers): which replica
// degraded reads choose, and when reads are not degraded at all.
func TestFallbackChoice(t *testing.T) {
	type rep struct {
		healthy, reachable, sqlRunning bool
		lastLag                        int64
		applied                        binlogPos
	}
	const down, up, unchecked = 0, 1, 2
	for _, tc := range []struct {
		name     string
		primary  int
		replicas []rep
		want     int // index of the chosen replica, -1 none
	}{
		{"primary up: never degraded", up, []rep{{reachable: true}}, -1},
		{"primary not checked yet: not degraded", unchecked, []rep{{reachable: true}}, -1},
		{"a healthy replica: not degraded", down, []rep{{reachable: true}, {healthy: true, reachable: true}}, -1},
		{"none reachable", down, []rep{{}, {}}, -1},
		{"the only reachable one", down, []rep{{}, {reachable: true, lastLag: -1}}, 1},
		{"furthest applied wins over a running SQL thread", down, []rep{
			{reachable: true, sqlRunning: true, lastLag: 0, applied: binlogPos{"b.000001", 500}},
			{reachable: true, lastLag: 3, applied: binlogPos{"b.000002", 4}},
		}, 1},
		{"same position: the running SQL thread", down, []rep{
			{reachable: true, lastLag: 0, applied: binlogPos{"b.000001", 500}},
			{reachable: true, sqlRunning: true, lastLag: 9, applied: binlogPos{"b.000001", 500}},
		}, 1},
		{"unknown positions: the smallest last lag", down, []rep{
			{reachable: true, sqlRunning: true, lastLag: 4},
			{reachable: true, sqlRunning: true, lastLag: -1},
			{reachable: true, sqlRunning: true, lastLag: 1},
		}, 2},
		{"an unreachable replica's old position does not count", down, []rep{
			{lastLag: 0, applied: binlogPos{"b.000009", 1}},
			{reachable: true, lastLag: 0, applied: binlogPos{"b.000001", 1}},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRouter(Config{CheckInterval: time.Hour}, slog.New(slog.DiscardHandler), nil)
			defer r.Close()
			mk := func(addr string) *endpoint {
				ep := r.newEndpoint(addr) // sql.Open only: nothing is dialled
				t.Cleanup(func() { ep.store.db.Close() })
				return ep
			}
			r.mu.Lock()
			r.primary = mk("primary:3306")
			if tc.primary != unchecked {
				r.primary.checked.Store(true)
				r.primary.healthy.Store(tc.primary == up)
			}
			r.replicas = nil
			for i, rp := range tc.replicas {
				ep := mk("replica" + string(rune('a'+i)) + ":3306")
				ep.checked.Store(true)
				ep.healthy.Store(rp.healthy)
				ep.reachable.Store(rp.reachable)
				ep.sqlRunning.Store(rp.sqlRunning)
				ep.lastLag.Store(rp.lastLag)
				if rp.applied.file != "" {
					ep.applied.Store(&rp.applied)
				}
				r.replicas = append(r.replicas, ep)
			}
			r.mu.Unlock()

			r.mu.RLock()
			got := r.fallbackLocked()
			r.mu.RUnlock()
			var want *endpoint
			if tc.want >= 0 {
				want = r.replicas[tc.want]
			}
			if got != want {
				t.Errorf("fallback = %v, want %v", addrOf(got), addrOf(want))
			}
			s, err := r.Reader()
			switch {
			case err != nil:
				t.Errorf("Reader(): %v", err)
			case want != nil && s != want.store:
				t.Errorf("Reader() = %s, want the fallback %s", s.Addr(), want.addr)
			}
			if r.ReadDegraded() != (want != nil) {
				t.Errorf("ReadDegraded() = %v, want %v", r.ReadDegraded(), want != nil)
			}
			for i, st := range r.Status()[1:] {
				if st.ReadFallback != (i == tc.want) {
					t.Errorf("Status() replica %d ReadFallback = %v, want %v", i, st.ReadFallback, i == tc.want)
				}
			}
		})
	}
}

func addrOf(ep *endpoint) string {
	if ep == nil {
		return "<nil>"
	}
	return ep.addr
}
