package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/patronage/patronage/internal/stripeapi/stripefake"
)

// The newsroom's article page, on another origin listed in
// EMBED_ALLOWED_ORIGINS, shows both boxes in iframes, sized to their
// content by the one-line script; a reader joins from the box and lands on
// Stripe Checkout in the whole window. A page on an origin not listed gets
// no box.
func TestTheBoxesOnTheNewsroomsArticlePage(t *testing.T) {
	chromium := chromiumPath(t)
	fake := stripefake.New(t)
	addr := freeLoopbackAddr(t)
	newsroom, stranger := listenLoopback(t), listenLoopback(t)
	env := map[string]string{"HTTP_ADDR": addr, "DATA_DIR": filepath.Join(t.TempDir(), "data"), "BASE_URL": "http://" + addr,
		"STRIPE_SECRET_KEY": stripefake.SecretKey, "STRIPE_API_BASE": fake.URL, "EMBED_ALLOWED_ORIGINS": "http://" + newsroom.Addr().String()}
	s := startServer(t, env)
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org")
	if code != 0 {
		t.Fatalf("admin create: %d %s", code, stderr)
	}
	token := tokenPattern.FindString(out)
	if status, body := call(t, "POST", s.URL+"/api/v1/staff/tiers", token,
		`{"slug":"coffee","name":"Coffee","prices":[{"currency":"eur","interval":"month","amount":500}]}`); status != http.StatusCreated {
		t.Fatalf("create tier = %d %s", status, body)
	}
	var topics []string
	for _, title := range []string{"Flood defences", "School meals"} {
		status, body := call(t, "POST", s.URL+"/api/v1/staff/topics", token, `{"title":"`+title+`"}`)
		var created struct{ Topic struct{ ID string } }
		if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil {
			t.Fatalf("create topic = %d %s", status, body)
		}
		topics = append(topics, created.Topic.ID)
	}
	if status, body := call(t, "POST", s.URL+"/api/v1/staff/rounds", token, fmt.Sprintf(`{"title":"What should we investigate?","opens_at":%q,"closes_at":%q,"topic_ids":[%q,%q]}`,
		time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), topics[0], topics[1])); status != http.StatusCreated {
		t.Fatalf("create round = %d %s", status, body)
	}

	// The article page: the snippet of docs/embed.md for each box, and a
	// little script of the test's own that says when both frames have
	// loaded and been sized.
	article := fmt.Sprintf(`<!doctype html><title>An article</title><h1>An article</h1>
<iframe id="join" title="Become a patron" height="420" style="width:100%%;border:0"></iframe>
<iframe id="vote" title="Vote" height="300" style="width:100%%;border:0"></iframe>
<script>
const boxes = ["join", "vote"].map(id => document.getElementById(id));
window.loaded = Promise.all(boxes.map(f => new Promise(r => f.addEventListener("load", r, {once: true}))));
window.sized = Promise.all(boxes.map(f => new Promise(r => new MutationObserver((_, o) => {
  if (f.style.height) { o.disconnect(); r(f.style.height); }
}).observe(f, {attributes: true}))));
boxes.forEach(f => { f.src = %q + "/embed/" + f.id; });
</script>
<script src="%s/static/embed.js" async></script>`, s.URL, s.URL)
	serveArticle := func(ln net.Listener) string {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, article)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return "http://" + ln.Addr().String() + "/"
	}
	newsroomURL, strangerURL := serveArticle(newsroom), serveArticle(stranger)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b := openBrowser(t, ctx, chromium)
	b.open(newsroomURL)
	heights, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`window.loaded.then(() => window.sized)`, chromedp.EvalAwaitPromise))
	if err != nil || len(heights) != 2 || heights[0] == "420px" || heights[1] == "300px" {
		t.Fatalf("the boxes' heights %v (%v): want each sized to its content", heights, err)
	}
	if got := frameText(t, b, "#vote", "h1"); got != "What should we investigate?" {
		t.Errorf("the vote box shows %q", got)
	}
	if got := frameText(t, b, "#vote", "ol.topics"); !strings.Contains(got, "Flood defences") || !strings.Contains(got, "School meals") {
		t.Errorf("the vote box lists %q", got)
	}

	// Joining from the box opens Stripe Checkout in the whole window.
	join := frameNode(t, b, "#join")
	if _, err := chromedp.Run(b.ctx, chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "ada@example.org", chromedp.FromNode(join))); err != nil {
		t.Fatal(err)
	}
	// The whole window, not the frame, goes to Checkout: watch the top
	// frame's navigations.
	top := make(chan string, 16)
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*page.EventFrameNavigated); ok && e.Frame.ParentID == "" {
			select {
			case top <- e.Frame.URL:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(b.ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`), chromedp.FromNode(join))); err != nil {
		t.Fatalf("join from the box: %v", err)
	}
	for arrived := false; !arrived; {
		select {
		case url := <-top:
			arrived = strings.HasPrefix(url, fake.URL+"/checkout/cs_")
			if !arrived && !strings.HasPrefix(url, s.URL+"/join/subscribe") {
				t.Fatalf("after joining the window went to %s, want Stripe Checkout (%s/checkout/…)", url, fake.URL)
			}
		case <-b.ctx.Done():
			t.Fatal("the window never reached Stripe Checkout")
		}
	}
	if n := fake.Created("checkout.session"); n != 1 {
		t.Errorf("%d Checkout Sessions, want 1", n)
	}

	// On a site not listed, the boxes are refused: their frames hold
	// Chrome's error page, not the box.
	b.open(strangerURL)
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](`window.loaded`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	tree, err := chromedp.Call(b.ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.FrameTree.ChildFrames) != 2 {
		t.Fatalf("%d frames on the stranger's page", len(tree.FrameTree.ChildFrames))
	}
	for _, f := range tree.FrameTree.ChildFrames {
		if f.Frame.UnreachableURL == "" && strings.HasPrefix(f.Frame.URL, s.URL) {
			t.Errorf("a site not in EMBED_ALLOWED_ORIGINS shows the box %s", f.Frame.URL)
		}
	}
}

// frameNode is the element css of the page: an iframe, to query inside.
func frameNode(t *testing.T, b *browser, css string) *chromedp.Node {
	t.Helper()
	nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSS(css)))
	if err != nil || len(nodes) == 0 {
		t.Fatalf("no %s on the page: %v", css, err)
	}
	return nodes[0]
}

// frameText is the text of the element css inside the iframe frame.
func frameText(t *testing.T, b *browser, frame, css string) string {
	t.Helper()
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css), chromedp.FromNode(frameNode(t, b, frame))))
	if err != nil {
		t.Fatalf("%s in %s: %v", css, frame, err)
	}
	return strings.TrimSpace(text)
}
