package discovery

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("pl:%d", i*7919+13)
	}
	return out
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

// TestRingEverySizeLocates covers the sizes consistent v0.10.0 panicked on (few members, and
// names like redis1/redis11 whose hashes collide in its placement).
func TestRingEverySizeLocates(t *testing.T) {
	for n := 1; n <= 32; n++ {
		r := NewRing(names("redis", n))
		seen := map[string]int{}
		for _, k := range keys(20000) {
			m, ok := r.Locate(k)
			if !ok {
				t.Fatalf("%d members: Locate(%q) found nothing", n, k)
			}
			seen[m]++
		}
		if len(seen) != n {
			t.Errorf("%d members: keys landed on %d members, want all %d", n, len(seen), n)
		}
		// Bounded loads: no member holds more than 1.25× its fair share of partitions, and keys
		// follow partitions, so allow some slack for the key sample.
		for m, c := range seen {
			if fair := 20000 / n; c > fair*3/2+200 {
				t.Errorf("%d members: %s got %d keys, fair share %d", n, m, c, fair)
			}
		}
	}
}

func TestRingEmpty(t *testing.T) {
	if m, ok := NewRing(nil).Locate("pl:1"); ok {
		t.Fatalf("empty ring located %q", m)
	}
	if m, ok := (*Ring)(nil).Locate("pl:1"); ok {
		t.Fatalf("nil ring located %q", m)
	}
}

func TestRingOrderIndependent(t *testing.T) {
	ms := names("redis", 12)
	shuffled := append([]string(nil), ms...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	a, b := NewRing(ms), NewRing(append(shuffled, "redis3")) // and a duplicate
	for _, k := range keys(50000) {
		ma, _ := a.Locate(k)
		mb, _ := b.Locate(k)
		if ma != mb {
			t.Fatalf("key %q: %s in one ring, %s in the other", k, ma, mb)
		}
	}
}

// TestRingRemovalMovesAboutOneNth: removing one of N members moves that member's keys and few
// others. Bounded loads move some extra keys as partitions rebalance; the bound allows 2/N.
func TestRingRemovalMovesAboutOneNth(t *testing.T) {
	for _, n := range []int{3, 5, 10, 20} {
		ms := names("redis", n)
		before := NewRing(ms)
		after := NewRing(ms[1:])
		ks := keys(50000)
		moved := 0
		for _, k := range ks {
			a, _ := before.Locate(k)
			b, _ := after.Locate(k)
			if a != b {
				moved++
			}
		}
		frac := float64(moved) / float64(len(ks))
		t.Logf("%d members, one removed: %.3f of keys moved (1/N = %.3f)", n, frac, 1/float64(n))
		if frac > 2/float64(n) {
			t.Errorf("%d members: %.3f of keys moved, want at most %.3f", n, frac, 2/float64(n))
		}
		if frac < 0.5/float64(n) {
			t.Errorf("%d members: only %.3f of keys moved; the removed member's share is about %.3f", n, frac, 1/float64(n))
		}
	}
}

func BenchmarkRingLocate(b *testing.B) {
	r := NewRing(names("redis", 3))
	ks := keys(1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Locate(ks[i&1023])
	}
}
