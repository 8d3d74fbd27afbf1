package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
)

// decodePosts are posts as writebackd meets them: with and without a link and preview, in every
// script, with what the encoder escapes.
var decodePosts = []post.Post{
	{ID: 1<<63 - 5, UserID: 1<<60 + 7, Contents: "hé 🎉", URL: "https://example.com/?a=1&b=<2>",
		Scrap:     json.RawMessage(`{"title":"t \"q\" <b>","image":"https://e.com/i.png?x=1&y=2"}`),
		CreatedAt: time.UnixMilli(1_700_000_000_123).UTC()},
	{ID: 1, UserID: 2, Contents: "plain text", CreatedAt: time.UnixMilli(1_700_000_000_000).UTC()},
	{ID: 3, UserID: 4, Contents: "", CreatedAt: time.Unix(0, 0).UTC()},
	{ID: 5, UserID: 6, Contents: "日本語の投稿\n改行\t\"引用\" \\ / \x00\x1f\x7f \u2028\u2029 bad \xff utf8",
		URL: "https://例え.jp/パス", Scrap: json.RawMessage(`{"t":"é\u00e9\ud83c\udf89"}`),
		CreatedAt: time.Date(2026, 11, 22, 18, 0, 0, 123e6, time.UTC)},
}

// generic is today's decoding of a fetched job: gocraft's document, then decodeJob.
func generic(raw []byte) (job, post.Post, error) {
	var j job
	if err := json.Unmarshal(raw, &j); err != nil {
		return j, post.Post{}, err
	}
	p, err := decodeJob(j.Args)
	return j, p, err
}

func TestFastDecodeTakesWhatNewJobAndFailedWrite(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, p := range decodePosts {
		raw := newJob(p, now)
		retried := failed(fetched{raw: raw}, errors.New("db <down> \"x\""), RetryPolicy{MaxFails: 9, Base: time.Second, Cap: time.Second}, now).doc
		for _, doc := range [][]byte{raw, retried} {
			got, ok := decodeFast(doc)
			_, want, err := generic(doc)
			if !ok || err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("decodeFast(%s) = %+v, %v; want %+v (generic: %v)", doc, got, ok, want, err)
			}
		}
	}
}

// FuzzFastDecodeAgreesWithGeneric: whatever decodeFast takes, the generic path takes too and reads
// as the same post, and a failure rewrites the document as it would have from the generic path.
func FuzzFastDecodeAgreesWithGeneric(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	retry := RetryPolicy{MaxFails: 9, Base: time.Second, Cap: time.Second}
	for _, p := range decodePosts {
		raw := newJob(p, now)
		f.Add(raw)
		f.Add(failed(fetched{raw: raw}, errors.New("db down"), retry, now).doc)
		for _, v := range [][2]string{ // hostile variants: [old, new] in the job's bytes
			{`"post_id"`, `"Post_ID"`},
			{`"post_id"`, `"Post_ID":"5","post_id"`},
			{`"url":`, `"url":"x","url":`},
			{`"scrap"`, `"ſcrap"`},
			{`"scrap":`, `"ſcrap":"{}","scrap":`},
			{`"user_id"`, `"uſer_id"`},
			{`"args"`, `"ARGS"`},
			{`"args":`, `"args":{"post_id":"9"},"args":`},
			{`{"contents"`, `{"post_id":"9","contents"`},
			{`"user_id":"`, `"x":1,"user_id":"`},
			{`"post_id":"`, `"post_id":"+`},
			{`"post_id":"`, `"post_id":"00`},
			{`"post_id":"`, `"post_id":"\u0031`},
			{`"post_id":"`, `"post_id":1`},
			{`"url":`, `"url":null,"x":`},
			{`"contents":"`, `"contents":"\ud83c\udf89`},
			{`"contents":"`, `"contents":"\ud800 \uDFFF`},
			{`"contents":"`, `"contents":"\u00e9\u00E9 \/ \b\f\n\r\t\" \\ \u0000`},
			{`"contents":"`, `"contents":"\x \u12`},
			{`"contents":"`, "\"contents\":\"\xff\xed\xa0\x80"},
			{`"contents":"`, "\"contents\":\"\n\x1f"},
			{`"contents":"`, "\"contents\":\"\xff\xfe \x01"},
			{`"created_at":"`, `"created_at":"2024-01-01T09:00:00+09:00","created_at":"`},
			{`"t":`, `"t":1.5,"x":`},
			{`"t":`, `"t":-`},
			{`"t":`, `"t":9223372036854775808,"x":`},
			{`"t":`, `"t":9223372036854775807,"x":`},
			{`"t":`, `"t":0`},
			{`"id":"`, `"id":1,"x":"`},
			{`{"name":"persist_post",`, `{ "name" : "persist_post" ,`},
			{`"name":"persist_post",`, `"unique":true,"name":"persist_post",`},
			{`}}`, `},"fails":1.0}`},
			{`}}`, `},"fails":1,"err":null}`},
			{`}}`, `}} `},
			{`}}`, `}}}`},
			{`}}`, `},"fails":9300000000000000000}`},
			{`}}`, `}`},
		} {
			f.Add(bytes.Replace(raw, []byte(v[0]), []byte(v[1]), 1))
		}
	}
	for _, ids := range []string{`"post_id":"007","scrap":"","url":"","user_id":"1"`, `"post_id":"0","scrap":"","url":"","user_id":"1"`,
		`"post_id":"1","scrap":"{","url":"","user_id":"0"`, `"post_id":"1","scrap":"[]","url":"","user_id":"18446744073709551616"`} {
		f.Add([]byte(`{"name":"persist_post","id":"","t":0,"args":{"contents":"\u00e9","created_at":"2024-01-01T09:00:00.5+09:00",` + ids + `},"fails":0}`))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := decodeFast(raw)
		j, want, err := generic(raw)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("decodeFast took %q, which the generic path refuses: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeFast(%q) = %+v, generic %+v", raw, got, want)
		}
		lazy := failed(fetched{raw: raw}, Permanent(errors.New("x")), retry, now)
		eager := failed(fetched{raw: raw, doc: j, decoded: true}, Permanent(errors.New("x")), retry, now)
		if !reflect.DeepEqual(lazy, eager) {
			t.Fatalf("failed after decodeFast = %+v, after the generic path %+v", lazy, eager)
		}
	})
}

// TestFailedDecodesTheDocumentLazily: a job whose document decodeFast skipped is settled on failure
// as if the generic path had decoded it, fail count and all.
func TestFailedDecodesTheDocumentLazily(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	fresh := newJob(decodePosts[0], now)
	var retried job
	_ = json.Unmarshal(fresh, &retried)
	retried.Fails, retried.LastErr, retried.FailedAt = 2, "earlier", now.Unix()-60
	again, _ := json.Marshal(retried)
	for _, tc := range []struct {
		name      string
		raw       []byte
		cause     error
		maxFails  uint
		action    string
		wantFails int64
	}{
		{"fresh, transient", fresh, errors.New("database down"), 9, "retry", 1},
		{"fresh, permanent", fresh, Permanent(errors.New("rejected")), 9, "dead", 1},
		{"retried, transient", again, errors.New("database down"), 9, "retry", 3},
		{"retried, last try", again, errors.New("database down"), 3, "dead", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			retry := RetryPolicy{MaxFails: tc.maxFails, Base: time.Minute, Cap: time.Minute}
			f := fetched{raw: tc.raw}
			if _, ok := decodeFast(tc.raw); !ok {
				t.Fatalf("decodeFast refused %s", tc.raw)
			}
			got := failed(f, tc.cause, retry, now)
			var doc job
			if err := json.Unmarshal(got.doc, &doc); err != nil {
				t.Fatal(err)
			}
			if got.action != tc.action || doc.Fails != tc.wantFails || doc.LastErr != tc.cause.Error() {
				t.Errorf("got %s with fails %d, err %q; want %s with fails %d, err %q",
					got.action, doc.Fails, doc.LastErr, tc.action, tc.wantFails, tc.cause.Error())
			}
			eager := fetched{raw: tc.raw, decoded: true}
			_ = json.Unmarshal(tc.raw, &eager.doc)
			if want := failed(eager, tc.cause, retry, now); !bytes.Equal(got.doc, want.doc) {
				t.Errorf("document\n got %s\nwant %s (decoded before the handler ran)", got.doc, want.doc)
			}
		})
	}
}

// TestWorkerRetriesAFastDecodedJob: a job the fast path read, whose handler fails, is retried with
// its fail count and, at MaxFails, buried with the document the generic path would have written.
func TestWorkerRetriesAFastDecodedJob(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{})
	rc := r.Client(t)
	ctx := context.Background()
	k := newKeys("lazy_ns")
	raw := newJob(decodePosts[0], time.Now())
	if _, ok := decodeFast(raw); !ok {
		t.Fatalf("decodeFast refused %s", raw)
	}
	rc.LPush(ctx, k.jobs(), raw)
	var calls atomic.Int32
	w := NewWorker(WorkerConfig{Queue: Config{Namespace: "lazy_ns"}, Concurrency: 1,
		Retry: RetryPolicy{MaxFails: 2, Base: time.Second, Cap: time.Second}},
		func(context.Context, post.Post) error {
			calls.Add(1)
			return errors.New("database down")
		}, slog.New(slog.DiscardHandler), nil)
	w.SetEndpoints(discovery.QueueEndpoints{Primary: r.Addr()})
	w.Start()
	defer w.Stop()

	var dead []string
	itest.WaitFor(t, 15*time.Second, "the job in the dead set", func() bool {
		dead = rc.ZRange(ctx, k.dead(), 0, -1).Val()
		return len(dead) == 1
	})
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
	var got, want job
	if err := json.Unmarshal([]byte(dead[0]), &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(raw, &want)
	want.Fails, want.LastErr, want.FailedAt = 2, "database down", got.FailedAt
	if b, _ := json.Marshal(want); string(b) != dead[0] {
		t.Errorf("dead job\n got %s\nwant %s", dead[0], b)
	}
	if n := rc.ZCard(ctx, k.retry()).Val(); n != 0 {
		t.Errorf("%d jobs left in the retry set, want 0", n)
	}
}

// BenchmarkDecodeJob compares the generic decoding of a fetched job with decodeFast on the same
// BenchmarkDecodeJob compares the fast path with the generic one on the same job bytes. Each
// iteration is one pair, generic then fast, decodeRun decodes each, so the two interleave; at
// least 3 pairs run. Reported per job kind: the median ns per decode of each, the median per-pair
// ratio generic/fast and the machine CPU per decode of each (busy time from /proc/stat over the
// run, so it counts the garbage collector's work too).
func BenchmarkDecodeJob(b *testing.B) {
	const decodeRun = 100_000
	for _, tc := range []struct {
		name string
		p    post.Post
	}{{"text", decodePosts[1]}, {"preview", decodePosts[0]}} {
		raw := newJob(tc.p, time.Unix(1_700_000_000, 0))
		b.Run(tc.name, func(b *testing.B) {
			run := func(decode func() bool) (wall, cpu float64) {
				cpu0, start := machineBusy(b), time.Now()
				for range decodeRun {
					if !decode() {
						b.Fatal("refused")
					}
				}
				return float64(time.Since(start).Nanoseconds()) / decodeRun,
					float64((machineBusy(b) - cpu0).Nanoseconds()) / decodeRun
			}
			var gen, fast, genCPU, fastCPU, ratio []float64
			for range max(b.N, 3) { // at least 3 pairs, whatever -benchtime says
				g, gc := run(func() bool { _, _, err := generic(raw); return err == nil })
				f, fc := run(func() bool { _, ok := decodeFast(raw); return ok })
				gen, fast, genCPU, fastCPU = append(gen, g), append(fast, f), append(genCPU, gc), append(fastCPU, fc)
				ratio = append(ratio, g/f)
			}
			b.ReportMetric(median(gen), "generic_ns/job")
			b.ReportMetric(median(fast), "fast_ns/job")
			b.ReportMetric(median(ratio), "ratio")
			b.ReportMetric(median(genCPU), "generic_machine_cpu_ns/job")
			b.ReportMetric(median(fastCPU), "fast_machine_cpu_ns/job")
			b.ReportMetric(0, "ns/op") // an iteration is a pair of runs, not one decode
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// machineBusy is the machine's busy CPU time so far: user, nice, system, irq and softirq from
// the first line of /proc/stat (not idle, iowait, or steal, the time the hypervisor ran
// something else; guest and guest_nice are already in user and nice), in clock ticks of 10 ms.
func machineBusy(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	var busy time.Duration
	for i, f := range strings.Fields(line)[1:] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q: %v", line, err)
		}
		if i < 7 && i != 3 && i != 4 { // user nice system idle iowait irq softirq steal guest…
			busy += time.Duration(n) * 10 * time.Millisecond
		}
	}
	return busy
}
