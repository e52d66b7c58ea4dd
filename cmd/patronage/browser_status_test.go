package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/statustoken"
	"github.com/patronage/patronage/members"
)

// The newsroom's site, on another origin, asks Patronage in the reader's
// browser for their status token, and its own server verifies the token
// against Patronage's published keys and shows their tier — as
// docs/patron-status.md describes. A site not in CORS_ALLOWED_ORIGINS
// gets nothing from the same browser.
func TestTheNewsroomsSiteKnowsItsPatronInTheBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	addr := freeLoopbackAddr(t)
	newsroom, stranger := listenLoopback(t), listenLoopback(t)
	env := map[string]string{"HTTP_ADDR": addr, "DATA_DIR": filepath.Join(t.TempDir(), "data"), "BASE_URL": "http://" + addr,
		"CORS_ALLOWED_ORIGINS": "http://" + newsroom.Addr().String()}
	s := startServer(t, env)

	// The site's page fetches the token with the reader's cookie and hands
	// it to the site's server, which answers what it verified.
	page := fmt.Sprintf(`<!doctype html><title>The Daily Example</title><p id="status">checking…</p>
<script>
fetch(%q, {credentials: "include"})
  .then(r => r.ok ? r.json() : Promise.reject("HTTP " + r.status))
  .then(t => fetch("/verify", {method: "POST", body: t.token}))
  .then(r => r.text())
  .then(s => { document.getElementById("status").textContent = s; })
  .catch(e => { document.getElementById("status").textContent = "blocked: " + e; });
</script>`, s.URL+"/api/v1/me/token")
	serveSite := func(ln net.Listener) {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, page)
		})
		mux.HandleFunc("POST /verify", func(w http.ResponseWriter, r *http.Request) {
			token, _ := io.ReadAll(r.Body)
			resp, err := http.Get(s.URL + "/.well-known/jwks.json")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			jwks, _ := io.ReadAll(resp.Body)
			c, err := statustoken.Verify(string(token), jwks, s.URL, time.Now())
			switch {
			case err != nil:
				fmt.Fprintf(w, "not verified: %v", err)
			case c.Active:
				fmt.Fprintf(w, "Patron: %s", c.Tier)
			default:
				io.WriteString(w, "Reader")
			}
		})
		srv := &http.Server{Handler: mux}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	serveSite(newsroom)
	serveSite(stranger)

	const email = "reader@example.org"
	if status, body := call(t, "POST", s.URL+"/api/v1/members", "", `{"email":"`+email+`"}`); status != http.StatusAccepted {
		t.Fatalf("sign up = %d %s", status, body)
	}
	link := waitForSignInLink(t, s, email)
	grantTier(t, env["DATA_DIR"], email, "coffee")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b := openBrowser(t, ctx, chromium)
	b.open(link) // signed in on Patronage
	b.open("http://" + newsroom.Addr().String() + "/")
	b.waitText("#status", "Patron: coffee")
	b.open("http://" + stranger.Addr().String() + "/")
	b.waitPrefix("#status", "blocked: ")
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// grantTier makes the member with email a complimentary patron of tier.
func grantTier(t *testing.T, dataDir, email, tier string) {
	t.Helper()
	ctx := context.Background()
	db, memberID := openWithMember(t, dataDir, email)
	if _, err := db.Exec(`INSERT INTO tiers (slug, name, created_at, updated_at) VALUES ($1, $1, $2, $2)`, tier, sqldb.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := billing.NewService(billing.Deps{DB: db}).GrantComplimentary(ctx, members.CommandLine, memberID, billing.GrantInput{Tier: tier}); err != nil {
		t.Fatal(err)
	}
}

// waitText waits until the element's text is want (the page's scripts
// write it), failing with what it last was when the walk's time runs out.
func (b *browser) waitText(css, want string) {
	b.t.Helper()
	b.waitFor(css, func(got string) bool { return got == want }, fmt.Sprintf("%q", want))
}

// waitPrefix waits until the element's text starts with prefix.
func (b *browser) waitPrefix(css, prefix string) {
	b.t.Helper()
	b.waitFor(css, func(got string) bool { return len(got) >= len(prefix) && got[:len(prefix)] == prefix }, fmt.Sprintf("text starting %q", prefix))
}

func (b *browser) waitFor(css string, ok func(string) bool, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`new Promise(resolve => {
		const el = document.querySelector(%q);
		const check = () => { const t = el ? el.textContent : ""; if (%s) { resolve(t); return true; } return false; };
		if (check()) return;
		new MutationObserver((_, o) => { if (check()) o.disconnect(); }).observe(el, {childList: true, characterData: true, subtree: true});
	})`, css, "t !== "+jsString("checking…"))
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil || !ok(got) {
		b.t.Fatalf("%s: want %s, got %q (%v)", css, want, got, err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
