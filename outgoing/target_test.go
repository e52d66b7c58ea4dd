package outgoing

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

// Whatever a name resolves to when a delivery is made, no connection goes
// to a private address unless those are allowed: registering a public
// name and pointing it at 127.0.0.1 later (DNS rebinding) reaches nothing.
func TestDeliveriesNeverConnectToPrivateAddresses(t *testing.T) {
	var hit atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer srv.Close()
	_, err := newHTTPClient(defaultTimeout, false).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if !errors.Is(err, errPrivateTarget) {
		t.Fatalf("posting to %s: %v, want the private address refused", srv.URL, err)
	}
	if !strings.Contains(describe(err), "ALLOW_PRIVATE_WEBHOOK_TARGETS") {
		t.Errorf("the attempt says %q: it should say how to allow it", describe(err))
	}
	if hit.Load() != 0 {
		t.Fatal("the private address was reached")
	}
	if resp, err := newHTTPClient(defaultTimeout, true).Post(srv.URL, "application/json", strings.NewReader("{}")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("allowed: %v %v", resp, err)
	}
}

// A redirect is an answer, not a new place to send the patron's data.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	srv := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	resp, err := newHTTPClient(defaultTimeout, true).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || elsewhere.Load() != 0 {
		t.Fatalf("status %d, redirect target hit %d times", resp.StatusCode, elsewhere.Load())
	}
}

func TestPrivateAddresses(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "10.0.0.8": true, "172.16.4.4": true, "192.168.1.1": true, "169.254.169.254": true, "100.64.1.1": true,
		"0.0.0.0": true, "::1": true, "fe80::1": true, "fd12::1": true, "::ffff:127.0.0.1": true, "224.0.0.1": true,
		"93.184.215.14": false, "2606:4700::1111": false, "8.8.8.8": false,
	} {
		if got := private(netip.MustParseAddr(addr)); got != want {
			t.Errorf("private(%s) = %v, want %v", addr, got, want)
		}
	}
}
