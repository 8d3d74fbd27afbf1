package load

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// fakePostsvc acknowledges every post with a fresh id and answers every read.
func fakePostsvc(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var next atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/posts":
			var in struct {
				UserID int64 `json:"user_id"`
			}
			if json.NewDecoder(r.Body).Decode(&in) != nil || in.UserID <= 0 {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			id := strconv.FormatInt(next.Add(1)+1<<60, 10)
			json.NewEncoder(w).Encode(map[string]any{"post_id_str": id, "user_id": in.UserID})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/posts/"):
			w.Write([]byte(`{"posts":[],"next_id":null}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &next
}

func TestRunCountBound(t *testing.T) {
	srv, issued := fakePostsvc(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	rep, err := Run(context.Background(), Config{
		Targets: func() []string { return []string{host} }, Count: 200, Concurrency: 4, ReadRatio: 0.3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Writes != 200 || len(rep.Acks) != 200 || issued.Load() != 200 {
		t.Errorf("got %d writes, %d acks, %d issued; want 200 each", rep.Writes, len(rep.Acks), issued.Load())
	}
	if rep.WriteErrors+rep.ReadErrors != 0 {
		t.Errorf("got errors %v, want none", rep.Errors)
	}
	if rep.Reads == 0 || rep.ReadLatency.Count != rep.Reads || rep.WriteLatency.P99 < rep.WriteLatency.P50 {
		t.Errorf("got reads %d, read latency %+v, write latency %+v", rep.Reads, rep.ReadLatency, rep.WriteLatency)
	}
}

func TestRunNeedsABound(t *testing.T) {
	_, err := Run(context.Background(), Config{Targets: func() []string { return []string{"127.0.0.1:1"} }})
	if err == nil {
		t.Fatal("got nil error for an unbounded run")
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	rep, err := Run(context.Background(), Config{
		Targets: func() []string { return []string{"192.0.2.1:80"} }, Count: 3, Concurrency: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Writes != 0 || rep.Errors["write not_loopback"] != 3 {
		t.Errorf("got %d writes, errors %v; want 0 writes and 3 not_loopback", rep.Writes, rep.Errors)
	}
}

func TestRunDurationBound(t *testing.T) {
	srv, _ := fakePostsvc(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	start := time.Now()
	rep, err := Run(context.Background(), Config{
		Targets: func() []string { return []string{host} }, Duration: 300 * time.Millisecond, Rate: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second || rep.Writes+rep.Reads == 0 {
		t.Errorf("got a run of %s with %d ops; want it bounded and non-empty", time.Since(start), rep.Writes+rep.Reads)
	}
}

func TestVerify(t *testing.T) {
	m := itest.StartMariaDB(t)
	db := m.DB(t, "lg")
	if _, err := db.Exec("CREATE TABLE posts (post_id BIGINT UNSIGNED PRIMARY KEY, user_id BIGINT UNSIGNED NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO posts VALUES (18446744073709551615, 1), (2, 2), (3, 9)"); err != nil {
		t.Fatal(err)
	}
	acks := []Ack{{"18446744073709551615", 1}, {"2", 2}, {"3", 3}, {"4", 4}}
	v, err := Verify(context.Background(), m.DSN("lg"), acks, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK() || v.Found != 2 || len(v.Missing) != 1 || v.Missing[0] != "4" || len(v.WrongUser) != 1 || v.WrongUser[0] != "3" {
		t.Errorf("got %+v; want 2 found, 4 missing, 3 under the wrong user", v)
	}
	v, err = Verify(context.Background(), m.DSN("lg"), acks[:2], time.Second)
	if err != nil || !v.OK() {
		t.Errorf("got %+v, %v; want OK", v, err)
	}
}

func TestRedact(t *testing.T) {
	if got, want := redact("u:secret@tcp(127.0.0.1:3306)/db"), "u:********@tcp(127.0.0.1:3306)/db"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestClassify covers the duplicate case too, which a table keyed on post_id cannot produce.
func TestClassify(t *testing.T) {
	acks := []Ack{{"1", 1}, {"2", 2}, {"3", 3}, {"4", 4}}
	found := map[string][]int64{"1": {1}, "2": {2, 2}, "3": {9}}
	got := classify(acks, found)
	want := Verification{Acked: 4, Found: 1, Missing: []string{"4"}, Duplicated: []string{"2"}, WrongUser: []string{"3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestPostIDStr(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"post_id":123,"post_id_str":"123","user_id":1}`, "123"},
		{`{"post_id_str":""}`, ""},
		{`{"post_id_str":"12x"}`, ""},
		{`{"post_id_str":"18446744073709551616"}`, ""},
		{`{"error":"unavailable"}`, ""},
		{`{"post_id_str":"5`, ""},
	} {
		if got := postIDStr([]byte(tc.body)); got != tc.want {
			t.Errorf("postIDStr(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}
