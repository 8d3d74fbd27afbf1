package scrap

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"code.dny.dev/ssrf"
)

// The SSRF guard. Every connection scrapd opens — the page, each redirect hop, robots.txt — goes
// through Guard.Check twice: once in our DialContext on the resolved address, and again in
// net.Dialer.Control on the address the socket is about to connect to, so neither a DNS answer nor a
// redirect can reach an inward address.
//
// code.dny.dev/ssrf supplies the deny lists (the IANA special-purpose registries: loopback, RFC 1918,
// link-local, CGNAT, documentation and benchmark ranges, multicast, 240/4 and broadcast, 0/8; for
// IPv6 everything outside 2000::/3 — ::1, ULA, link-local, NAT64, IPv4-compatible and -mapped forms —
// plus 6to4 and Teredo inside it). What it lacks, and Guard adds:
//   - IPv4-mapped IPv6 (::ffff:127.0.0.1) is unmapped before any check, so an allow-list entry for
//     127.0.0.1/32 and the deny lists see the same address whichever form arrives;
//   - allow-list entries bypass the port check (ssrf checks ports before prefixes, so it cannot
//     allow a fixture server on 127.0.0.1:41234 without allowing every port everywhere);
//   - host parsing the way browsers do it (2130706433, 0x7f.1, 0177.0.0.1 are 127.0.0.1), done in
//     ValidateURL, so such hosts are never handed to a resolver that might expand them its own way.

// DefaultPorts are the destination ports allowed outside the allow list.
var DefaultPorts = []uint16{80, 443}

// Guard decides whether scrapd may connect to an address.
type Guard struct {
	allow []netip.Prefix // reachable on any port: development and tests only
	ports []uint16
	deny  *ssrf.Guardian
}

// NewGuard returns a guard allowing the given prefixes on any port, and otherwise only public
// addresses on ports.
func NewGuard(allow []netip.Prefix, ports []uint16) *Guard {
	return &Guard{
		allow: allow,
		ports: ports,
		deny:  ssrf.New(ssrf.WithAnyPort(), ssrf.WithAnyNetwork()),
	}
}

// Check returns a *blockedError if ap may not be dialed.
func (g *Guard) Check(ap netip.AddrPort) error {
	addr := ap.Addr().Unmap()
	for _, p := range g.allow {
		if p.Contains(addr) {
			return nil
		}
	}
	if !slices.Contains(g.ports, ap.Port()) {
		return &blockedError{reason: fmt.Sprintf("port %d not allowed", ap.Port())}
	}
	if err := g.deny.SafeAddr(addr); err != nil {
		return &blockedError{reason: err.Error()}
	}
	return nil
}

// control is the net.Dialer.Control hook: the last check, on the exact address being connected to.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &blockedError{reason: "unparsable dial address " + address}
	}
	return g.Check(ap)
}

// ParseAllowCIDR parses a comma list of CIDR prefixes or bare addresses ("127.0.0.1/32,::1").
func ParseAllowCIDR(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("allow-cidr %q: %w", f, err)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("allow-cidr %q: %w", f, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ParsePorts parses a comma list of ports ("80,443").
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("allow-ports: %q is not a port", f)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// MaxURLLength bounds the URLs scrapd accepts.
const MaxURLLength = 2048

// ValidateURL parses raw and returns it normalized: scheme and host lower case, a numeric IPv4 host
// in dotted form, the default port and the fragment dropped, an empty path made "/". It refuses
// (ErrInvalidURL, with a message) anything but absolute http(s) URLs with a host and no userinfo.
// Ports are checked at dial time, where the allow list is known to apply.
func ValidateURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, ErrInvalidURL.WithMessage("the url parameter is required")
	}
	if len(raw) > MaxURLLength {
		return nil, ErrInvalidURL.WithMessage(fmt.Sprintf("the url is longer than %d bytes", MaxURLLength))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, ErrInvalidURL.WithMessage("the url does not parse")
	}
	return normalizeURL(u)
}

func normalizeURL(u *url.URL) (*url.URL, error) {
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, ErrInvalidURL.WithMessage("only http and https urls are allowed")
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, ErrInvalidURL.WithMessage("the url has no host")
	}
	if u.User != nil {
		return nil, ErrInvalidURL.WithMessage("urls with user info are not allowed")
	}
	host, err := normalizeHost(u.Hostname())
	if err != nil {
		return nil, err
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return nil, ErrInvalidURL.WithMessage("the url has an invalid port")
		}
		port = strconv.FormatUint(n, 10) // "080" → "80"
	}
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	out := *u
	out.Host = host
	out.Fragment, out.RawFragment = "", ""
	if out.Path == "" {
		out.Path, out.RawPath = "/", ""
	}
	return &out, nil
}

// normalizeHost lower-cases a host, drops a trailing dot, and rewrites any IPv4 notation browsers accept into dotted
// decimal. A host whose last label is numeric but which is no valid IPv4 address is invalid, as in
// the WHATWG URL standard, so "1.2.3.999" never goes to a resolver.
func normalizeHost(h string) (string, error) {
	h = strings.ToLower(h)
	if h == "" {
		return "", ErrInvalidURL.WithMessage("the url has no host")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "", ErrInvalidURL.WithMessage("zoned IPv6 addresses are not allowed")
		}
		return a.Unmap().String(), nil
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" {
		return "", ErrInvalidURL.WithMessage("the url has no host")
	}
	labels := strings.Split(name, ".")
	if slices.Contains(labels, "") {
		return "", ErrInvalidURL.WithMessage("the url's host has an empty label")
	}
	if !endsInNumber(labels[len(labels)-1]) {
		return name, nil // "example.com." is "example.com"
	}
	a, ok := parseIPv4Loose(labels)
	if !ok {
		return "", ErrInvalidURL.WithMessage("the url's host is not a valid IPv4 address")
	}
	return a.String(), nil
}

func endsInNumber(label string) bool {
	if hex, ok := strings.CutPrefix(strings.ToLower(label), "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return label != "" && strings.Trim(label, "0123456789") == ""
}

// parseIPv4Loose implements the WHATWG IPv4 parser: 1–4 parts, each decimal, octal (leading 0) or
// hex (0x); the last part fills the remaining bytes.
func parseIPv4Loose(labels []string) (netip.Addr, bool) {
	if len(labels) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(labels))
	for i, l := range labels {
		n, ok := parseIPv4Number(l)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v += n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Number(s string) (uint64, bool) {
	base := 10
	switch {
	case s == "":
		return 0, false
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true
		}
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 32)
	if err != nil {
		return 0, false
	}
	return n, true
}
