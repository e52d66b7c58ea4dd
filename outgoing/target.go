package outgoing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Addresses an endpoint may not reach unless private targets are allowed:
// the machine itself, its networks, and the cloud's metadata service.
var privatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64, which can wrap any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4, likewise
}

// private reports whether an address is loopback, link-local, private,
// unspecified, multicast or otherwise not on the public internet.
func private(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return true
	}
	for _, p := range privatePrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// errPrivateTarget is a target on a private network while those are refused.
var errPrivateTarget = errors.New("the address is on a loopback, link-local or private network")

// checkURL is why raw cannot be an endpoint's URL ("" when it can): an
// absolute http(s) URL without credentials, whose host resolves only to
// public addresses unless allowPrivate.
func checkURL(ctx context.Context, raw string, allowPrivate bool) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return "must be an absolute http:// or https:// URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must use http or https"
	case u.User != nil:
		return "may not carry a user name or password"
	case u.Fragment != "":
		return "may not carry a fragment"
	case len(raw) > 2048:
		return "must be at most 2048 characters"
	}
	if allowPrivate {
		return ""
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if private(a) {
			return "points at a loopback, link-local or private address (set ALLOW_PRIVATE_WEBHOOK_TARGETS=true to allow)"
		}
		return ""
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return "points at a loopback, link-local or private address (set ALLOW_PRIVATE_WEBHOOK_TARGETS=true to allow)"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Sprintf("host %q does not resolve", host)
	}
	for _, a := range addrs {
		if private(a) {
			return "resolves to a loopback, link-local or private address (set ALLOW_PRIVATE_WEBHOOK_TARGETS=true to allow)"
		}
	}
	return ""
}

// newHTTPClient posts deliveries: it follows no redirect (a 3xx is a
// failed attempt) and, unless allowPrivate, connects to no private address
// whatever a name resolves to at the time (DNS rebinding included).
func newHTTPClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || private(ap.Addr()) {
				return errPrivateTarget
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil, // straight to the endpoint: a proxy would hide the address checked above
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       60 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
