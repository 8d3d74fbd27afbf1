package scrap

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestGuardCheck(t *testing.T) {
	g := NewGuard(nil, DefaultPorts)
	blocked := []string{
		"127.0.0.1:80", "127.255.255.254:443", "0.0.0.0:80", "0.1.2.3:80", "10.0.0.1:80", "172.16.0.1:80",
		"172.31.255.255:80", "192.168.1.1:80", "169.254.169.254:80", "100.64.0.1:80", "100.127.255.254:80",
		"224.0.0.1:80", "239.255.255.250:80", "240.0.0.1:80", "255.255.255.255:80", "192.0.0.8:80",
		"192.0.2.1:80", "198.51.100.7:80", "203.0.113.9:80", "198.18.0.1:80", "198.19.255.255:80",
		"192.88.99.1:80",
		"[::1]:80", "[::]:80", "[fc00::1]:80", "[fd12:3456::1]:80", "[fe80::1]:80", "[ff02::1]:80",
		"[::ffff:127.0.0.1]:80", "[::ffff:7f00:1]:80", "[::ffff:10.0.0.1]:80", "[::ffff:169.254.169.254]:80",
		"[::127.0.0.1]:80",                          // IPv4-compatible (deprecated)
		"[64:ff9b::7f00:1]:80",                      // NAT64 of 127.0.0.1
		"[64:ff9b:1::a00:1]:80",                     // local-use NAT64 of 10.0.0.1
		"[2002:7f00:1::1]:80",                       // 6to4 embedding 127.0.0.1
		"[2001:0:4136:e378:8000:63bf:80ff:fffe]:80", // Teredo (inverted 127.0.0.1)
		"[2001:db8::1]:80", "[::ffff:0:7f00:1]:80",
		"8.8.8.8:8080", "8.8.8.8:22", "[2606:4700:4700::1111]:25", // odd ports
	}
	for _, s := range blocked {
		if err := g.Check(netip.MustParseAddrPort(s)); err == nil {
			t.Errorf("Check(%s): got allowed, want blocked", s)
		}
	}
	for _, s := range []string{"8.8.8.8:80", "1.1.1.1:443", "[2606:4700:4700::1111]:443", "[::ffff:8.8.8.8]:80"} {
		if err := g.Check(netip.MustParseAddrPort(s)); err != nil {
			t.Errorf("Check(%s): got %v, want allowed", s, err)
		}
	}
}

func TestGuardAllowList(t *testing.T) {
	allow, err := ParseAllowCIDR("127.0.0.1/32, ::1")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(allow, DefaultPorts)
	for _, s := range []string{"127.0.0.1:41234", "[::ffff:127.0.0.1]:9", "[::1]:8080"} {
		if err := g.Check(netip.MustParseAddrPort(s)); err != nil {
			t.Errorf("Check(%s) with the allow list: got %v, want allowed on any port", s, err)
		}
	}
	for _, s := range []string{"127.0.0.2:80", "10.0.0.1:80"} {
		if err := g.Check(netip.MustParseAddrPort(s)); err == nil {
			t.Errorf("Check(%s) with the allow list: got allowed, want blocked", s)
		}
	}
	for _, bad := range []string{"127.0.0.1/33", "nope", "1.2.3.4/8x"} {
		if _, err := ParseAllowCIDR(bad); err == nil {
			t.Errorf("ParseAllowCIDR(%q): got nil error", bad)
		}
	}
}

func TestValidateURL(t *testing.T) {
	ok := []struct{ in, want string }{
		{"http://example.com", "http://example.com/"},
		{"HTTPS://Example.COM:443/a?b=c#frag", "https://example.com/a?b=c"},
		{"http://example.com:80/", "http://example.com/"},
		{"http://example.com:8080/", "http://example.com:8080/"},
		{"http://2130706433/", "http://127.0.0.1/"},
		{"http://0x7f.1/", "http://127.0.0.1/"},
		{"http://0x7f000001/", "http://127.0.0.1/"},
		{"http://0177.0.0.1/", "http://127.0.0.1/"},
		{"http://127.1/", "http://127.0.0.1/"},
		{"http://127.0.0.1./", "http://127.0.0.1/"},
		{"http://[::ffff:127.0.0.1]/", "http://127.0.0.1/"},
		{"http://[::ffff:7f00:1]/", "http://127.0.0.1/"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"http://127.0.0.1#@evil.com/", "http://127.0.0.1/"},
	}
	for _, tt := range ok {
		u, err := ValidateURL(tt.in)
		if err != nil {
			t.Errorf("ValidateURL(%q): got %v, want %q", tt.in, err, tt.want)
			continue
		}
		if got := u.String(); got != tt.want {
			t.Errorf("ValidateURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
	bad := []string{
		"", "example.com", "/relative", "file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://example.com/",
		"javascript:alert(1)", "data:text/html,hi", "http://evil@127.0.0.1/", "http://user:pw@example.com/",
		"http:///path", "http://1.2.3.999/", "http://0x100000000/", "http://1.2.3.4.5/", "http://[fe80::1%25eth0]/",
		"http://example.com:0/", "http://example.com:99999/", "http://exa mple.com/", "http:example.com",
		"http://" + strings.Repeat("a", MaxURLLength) + ".com/",
	}
	for _, in := range bad {
		if u, err := ValidateURL(in); err == nil {
			t.Errorf("ValidateURL(%q): got %q, want invalid_url", in, u)
		} else {
			wantAPIError(t, err, "invalid_url")
		}
	}
}

// TestSSRFNeverConnects runs the service with the guard on (no allow list) against real listeners
// on the loopback addresses and the tested port, allowed as a port so that only the address check
// stands between the fetcher and the listeners: every form of an inward URL must be refused and the
// listeners must accept nothing.
func TestSSRFNeverConnects(t *testing.T) {
	v4 := listenCounting(t, "127.0.0.1:0")
	port := v4.port()
	listeners := []*acceptCounter{v4}
	if v6 := tryListen("[::1]:" + strconv.Itoa(port)); v6 != nil {
		t.Cleanup(func() { v6.ln.Close() })
		listeners = append(listeners, v6)
	}
	cfg := DefaultConfig()
	cfg.AllowPorts = "80,443," + strconv.Itoa(port)
	cfg.Robots = true // robots.txt dials are guarded too
	resolver := mapResolver{
		"localhost":       addrs("127.0.0.1", "::1"),
		"inward.test":     addrs("127.0.0.1"),
		"mapped.test":     addrs("::ffff:127.0.0.1"),
		"v6.test":         addrs("::1"),
		"metadata.test":   addrs("169.254.169.254"),
		"evil.com":        addrs("127.0.0.1"),
		"public-odd.test": addrs("93.184.216.34"), // public, but on a port that is not allowed below
	}
	s := newTestService(t, cfg, Deps{Resolver: resolver})
	p := strconv.Itoa(port)
	urls := []string{
		"http://127.0.0.1:" + p + "/", "https://127.0.0.1:" + p + "/", "http://127.0.0.2:" + p + "/",
		"http://2130706433:" + p + "/", "http://0x7f.1:" + p + "/", "http://0x7f000001:" + p + "/",
		"http://0177.0.0.1:" + p + "/", "http://0177.1:" + p + "/", "http://127.1:" + p + "/",
		"http://[::1]:" + p + "/", "http://[::ffff:127.0.0.1]:" + p + "/", "http://[::ffff:7f00:1]:" + p + "/",
		"http://[0:0:0:0:0:ffff:7f00:1]:" + p + "/", "http://[::127.0.0.1]:" + p + "/",
		"http://[64:ff9b::7f00:1]:" + p + "/", "http://0.0.0.0:" + p + "/", "http://[::]:" + p + "/",
		"http://localhost:" + p + "/", "http://inward.test:" + p + "/", "http://mapped.test:" + p + "/",
		"http://v6.test:" + p + "/", "http://INWARD.TEST.:" + p + "/",
		"http://127.0.0.1:" + p + "#@evil.com/", "http://evil.com:" + p + "#@public-odd.test/",
		"http://evil@127.0.0.1:" + p + "/", "http://evil.com:x@127.0.0.1:" + p + "/",
		"http://169.254.169.254/latest/meta-data/", "http://metadata.test/", "http://[fd00:ec2::254]/",
		"http://100.64.0.1/", "http://10.0.0.1/", "http://192.168.0.1/", "http://[fc00::1]/",
		"http://224.0.0.1/", "http://255.255.255.255/",
		"http://public-odd.test:" + strconv.Itoa(port+1) + "/", "http://8.8.8.8:22/",
		"file:///etc/passwd", "gopher://127.0.0.1:" + p + "/_GET", "ftp://127.0.0.1:" + p + "/",
		"dict://127.0.0.1:" + p + "/", "http:/\\127.0.0.1:" + p + "/",
	}
	for _, u := range urls {
		_, err := s.Scrap(context.Background(), u)
		if err == nil {
			t.Errorf("Scrap(%s): got a preview, want it refused", u)
			continue
		}
		if name := classify(err).Name; name != "blocked_address" && name != "invalid_url" {
			t.Errorf("Scrap(%s): got %s (%v), want blocked_address or invalid_url", u, name, err)
		}
	}
	for _, l := range listeners {
		if n := l.accepted.Load(); n != 0 {
			t.Errorf("listener %s accepted %d connections, want 0", l.ln.Addr(), n)
		}
	}
}

// tryListen listens on addr if it can (IPv6 may be off), counting connections.
func tryListen(addr string) *acceptCounter {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil
	}
	return countAccepts(ln)
}

func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"http://example.com/", "http://2130706433/", "http://0x7f.1/", "http://[::ffff:7f00:1]/",
		"http://evil@127.0.0.1/", "http://127.0.0.1#@evil.com/", "https://例え.jp/パス?q=1", "http://1.2.3.999/",
		"HTTP://EXAMPLE.COM:0080/a/../b", "http://[fe80::1%25eth0]/", "gopher://x/", "http://0x/", "http://..", "http://a..b/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ValidateURL(raw)
		if err != nil {
			if classify(err).Name != "invalid_url" {
				t.Fatalf("ValidateURL(%q): got %v, want invalid_url", raw, err)
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.User != nil || u.Hostname() == "" || u.Fragment != "" {
			t.Fatalf("ValidateURL(%q) accepted %q", raw, u)
		}
		again, err := ValidateURL(u.String())
		if err != nil {
			t.Fatalf("ValidateURL(%q) = %q, which does not validate again: %v", raw, u, err)
		}
		if again.String() != u.String() {
			t.Fatalf("ValidateURL not idempotent: %q → %q → %q", raw, u, again)
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Is4In6() {
			t.Fatalf("ValidateURL(%q) kept a mapped address %s", raw, a)
		}
		_ = fmt.Sprint(u)
	})
}
