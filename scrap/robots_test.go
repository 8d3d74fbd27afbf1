package scrap

import (
	"bytes"
	"testing"
)

func TestRobotsRules(t *testing.T) {
	const agent = "zkpost-scrap"
	tests := []struct {
		name, robots, path string
		want               bool
	}{
		{"no file rules", "", "/x", true},
		{"longest match wins", "User-agent: *\nDisallow: /a\nAllow: /a/b\n", "/a/b/c", true},
		{"longest match wins (disallow)", "User-agent: *\nAllow: /a\nDisallow: /a/b\n", "/a/b/c", false},
		{"allow wins ties", "User-agent: *\nDisallow: /a\nAllow: /a\n", "/a", true},
		{"allow wins ties, either order", "User-agent: *\nAllow: /a\nDisallow: /a\n", "/a", true},
		{"wildcard", "User-agent: *\nDisallow: /*.php\n", "/index.php?x=1", false},
		{"wildcard no match", "User-agent: *\nDisallow: /*.php\n", "/index.html", true},
		{"end anchor", "User-agent: *\nDisallow: /*.php$\n", "/index.php?x=1", true},
		{"end anchor match", "User-agent: *\nDisallow: /*.php$\n", "/a/index.php", false},
		{"empty disallow allows", "User-agent: *\nDisallow:\n", "/x", true},
		{"own group only", "User-agent: *\nDisallow: /\n\nUser-agent: ZKPOST-SCRAP\nDisallow: /private\n", "/public", true},
		{"groups for us merge", "User-agent: zkpost-scrap\nDisallow: /a\n\nUser-agent: zkpost-scrap\nDisallow: /b\n", "/b", false},
		{"shared group", "User-agent: other\nUser-agent: zkpost-scrap\nDisallow: /x\n", "/x", false},
		{"other agent ignored", "User-agent: otherbot\nDisallow: /\n", "/x", true},
		{"comments and junk", "# hi\nUser-agent: * # all\nfoo bar\nDisallow: /x # no\nSitemap: http://x/s.xml\n", "/x/1", false},
		{"rules before any group ignored", "Disallow: /\nUser-agent: *\nAllow: /\n", "/x", true},
		{"robots.txt always allowed", "User-agent: *\nDisallow: /\n", "/robots.txt", true},
		{"disallow all", "User-agent: *\nDisallow: /\n", "/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRobots([]byte(tt.robots), agent).allowed(tt.path); got != tt.want {
				t.Errorf("allowed(%q) under %q: got %v, want %v", tt.path, tt.robots, got, tt.want)
			}
		})
	}
}

func TestProductToken(t *testing.T) {
	if got := productToken(DefaultUserAgent); got != "zkpost-scrap" {
		t.Errorf("productToken(%q): got %q, want zkpost-scrap", DefaultUserAgent, got)
	}
}

func FuzzParseRobots(f *testing.F) {
	f.Add([]byte("User-agent: *\nDisallow: /a*b$\nAllow: /a\n"), "/a/b")
	f.Add([]byte("User-agent: zkpost-scrap\nDisallow: /\n"), "/x?y=1")
	f.Add([]byte("\xff\xfe junk:::\n\n**$$"), "/**")
	f.Add([]byte("\xef\xbb\xbfuseragent zkpost-scrap/1\rdisalow /caf\xc3\xa9\r"), "/caf%C3%A9")
	f.Add([]byte("User-agent: *\nDisallow\v/x\nDisallow /y\u00a0z\nAllow: /caf\xc3\xa9/%7e\n"), "/y%C2%A0z")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		r := parseRobots(body, "zkpost-scrap")
		got := r.allowed(path)
		if !r.allowed("/robots.txt") {
			t.Fatal("robots.txt itself disallowed")
		}
		// Line ends are LF, CR or CRLF alike: writing every LF as CRLF changes nothing.
		if !bytes.Contains(body, []byte("\r")) {
			crlf := bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
			if parseRobots(crlf, "zkpost-scrap").allowed(path) != got {
				t.Fatalf("%q and its CRLF form disagree on %q", body, path)
			}
		}
	})
}
