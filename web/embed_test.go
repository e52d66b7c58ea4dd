package web

import (
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/members"
)

// The boxes may be framed by the newsroom's listed sites only, load
// nothing from elsewhere, work with plain forms and links that open in
// the top window, and weigh under 30 KB with their stylesheet and script.
func TestEmbeddableBoxes(t *testing.T) {
	ts := newFullTestServer(t, func(d *Deps) {
		d.EmbedAllowedOrigins = []string{"https://www.patrons.test", "https://Blog.Patrons.test"}
	})
	h := ts.Handler()
	if _, err := ts.db.Exec(`INSERT INTO tiers (slug, name, created_at, updated_at) VALUES ('coffee', 'Coffee', $1, $1)`, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.db.Exec(`INSERT INTO tier_prices (tier_slug, currency, billing_interval, amount, stripe_price_id)
		VALUES ('coffee', 'EUR', 'month', 500, 'price_coffee')`); err != nil {
		t.Fatal(err)
	}
	token, _ := staffSetup(t, ts, members.RoleStaff)
	var topics []string
	for _, title := range []string{"Rivers", "Rents"} {
		rec := postJSON(h, "/api/v1/staff/topics", fmt.Sprintf(`{"title":%q}`, title), "Authorization", "Bearer "+token)
		id := regexp.MustCompile(`"id":"(top_[a-z0-9]+)"`).FindStringSubmatch(rec.Body.String())
		if id == nil {
			t.Fatalf("topic = %d %s", rec.Code, rec.Body)
		}
		topics = append(topics, id[1])
	}
	rec := postJSON(h, "/api/v1/staff/rounds", fmt.Sprintf(`{"title":"What next?","opens_at":%q,"closes_at":%q,"topic_ids":[%q,%q]}`,
		time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), topics[0], topics[1]), "Authorization", "Bearer "+token)
	if rec.Code != http.StatusCreated {
		t.Fatalf("round = %d %s", rec.Code, rec.Body)
	}

	external := regexp.MustCompile(`(?i)(src|href|action)="(https?:)?//`)
	inline := regexp.MustCompile(`<script>| style=| on[a-z]+=`)
	for path, wants := range map[string][]string{
		"/embed/join": {"cup of coffee", `action="/join/subscribe"`, `target="_top"`, "EUR 5.00 a month", `name="email"`},
		"/embed/vote": {"What next?", "Rivers", "Rents", `href="/vote" target="_top"`},
	} {
		rec := do(h, "GET", path, "", nil)
		body := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Fatalf("%s = %d %s", path, rec.Code, body)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors https://www.patrons.test https://blog.patrons.test;") || strings.Contains(csp, "unsafe-inline") ||
			!strings.Contains(csp, "default-src 'self'") || rec.Header().Get("X-Frame-Options") != "" {
			t.Errorf("%s: CSP %q, X-Frame-Options %q", path, csp, rec.Header().Get("X-Frame-Options"))
		}
		for _, want := range wants {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %q:\n%s", path, want, body)
			}
		}
		if m := external.FindString(body); m != "" {
			t.Errorf("%s loads or links something from elsewhere: %s", path, m)
		}
		if inline.MatchString(body) {
			t.Errorf("%s has inline script or style", path)
		}
		size := len(body)
		for _, asset := range []string{"embed.css", "embed-frame.js"} {
			b, err := fs.ReadFile(staticFiles, "static/"+asset)
			if err != nil {
				t.Fatal(err)
			}
			size += len(b)
		}
		if size >= 30*1024 {
			t.Errorf("%s with its stylesheet and script is %d bytes, want under 30 KB", path, size)
		}
		t.Logf("FIGURES embed: %s is %d bytes with its stylesheet and script, uncompressed", path, size)
	}
	// Pages that are not boxes may still be framed by nobody.
	if csp := do(h, "GET", "/join", "", nil).Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("/join: %q", csp)
	}
}

// Without EMBED_ALLOWED_ORIGINS no site may frame the boxes.
func TestBoxesAreFramedByNobodyUnlessAllowed(t *testing.T) {
	ts := newFullTestServer(t)
	rec := do(ts.Handler(), "GET", "/embed/join", "", nil)
	if csp := rec.Header().Get("Content-Security-Policy"); rec.Code != http.StatusOK || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("/embed/join = %d, CSP %q", rec.Code, csp)
	}
}
