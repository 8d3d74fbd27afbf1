package discovery

import (
	"fmt"
	"net"
	"strconv"
)

// AdvertiseAddr returns the host:port to write to ZooKeeper for a server bound to bound: the
// --advertise flag when given, else the bound address, or the host's primary IP when bound to
// every interface (0.0.0.0 or ::), since other hosts cannot dial "0.0.0.0".
func AdvertiseAddr(flagValue string, bound net.Addr) (string, error) {
	if flagValue != "" {
		if _, err := ParseEndpoint(flagValue); err != nil {
			return "", fmt.Errorf("--advertise: %w", err)
		}
		return flagValue, nil
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("advertise: unexpected address %v", bound)
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		primary, err := primaryIP()
		if err != nil {
			return "", fmt.Errorf("advertise: %w (set --advertise)", err)
		}
		ip = primary
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port)), nil
}

// primaryIP returns the source address the kernel picks for outbound traffic. Dialing UDP sends
// no packet; it only asks the routing table.
func primaryIP() (net.IP, error) {
	c, err := net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1: never routed anywhere real
	if err != nil {
		return nil, fmt.Errorf("finding the primary IP: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP, nil
}
