package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestAReaderJoinsSignsInAndSeesTheirAccount walks the reader's way in, in a
// real Chromium: from the join page to an account, through the sign-in link
// in the mail, to the account page and out again; then checks the sign-in
// page on a phone-sized screen.
func TestAReaderJoinsSignsInAndSeesTheirAccount(t *testing.T) {
	chromium := chromiumPath(t)

	// The sign-in link in the mail is built from BASE_URL, and writes are
	// checked against it, so it must be the very origin the browser uses.
	addr := freeLoopbackAddr(t)
	s := startServer(t, map[string]string{
		"HTTP_ADDR": addr,
		"DATA_DIR":  filepath.Join(t.TempDir(), "data"),
		"BASE_URL":  "http://" + addr,
	})

	// The whole walk, browser start included, has a minute. A cleanup, not a
	// defer, ends it: the browser's own cleanup runs first and closes
	// Chromium gracefully while the context still lives.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b := openBrowser(t, ctx, chromium)

	const email, name = "ada@example.com", "Ada Lovelace"

	// The join page invites a newcomer to sign in or create an account.
	b.open(s.URL + "/join")
	b.wantHeading("Become a patron")
	b.followLink("Sign in or create an account")
	b.wantAt("/signin", "/join")
	b.wantHeading("Sign in")

	// "New here?": create an account.
	newHere := `//h2[normalize-space()="New here?"]/following-sibling::form[1]`
	b.fill(newHere, "Email address", email)
	b.fill(newHere, "Name", name)
	b.press(newHere, "Create my account")
	b.wantHeading("Check your email")
	b.wantText(email)

	// The mail (logged, as no SMTP_URL is set) holds a link that signs the
	// reader in and brings them back to where they were going.
	link := waitForSignInLink(t, s, email)
	b.open(link)
	b.wantAt("/join", "")
	b.wantHeading("Become a patron")
	if strings.Contains(b.text("main"), "Sign in or create an account") {
		t.Error("/join still offers to sign in after the reader signed in")
	}
	b.followLink("Account")
	b.wantAt("/account", "")
	b.wantHeading("Your account")
	b.wantText(email)
	b.wantText(name)
	b.wantText("Not a patron yet")

	// Scripts on the page, ours or injected, cannot read the session.
	session := b.cookie(s.URL, "patronage_session")
	if session == nil {
		t.Fatal("signed in, but the browser holds no patronage_session cookie")
	}
	if !session.HTTPOnly {
		t.Error("the patronage_session cookie is not HttpOnly")
	}
	if jsCookies := b.eval(`document.cookie`); strings.Contains(jsCookies, "patronage_session") {
		t.Errorf("document.cookie = %q: the page's scripts can read the session", jsCookies)
	}

	// Signing out lands on the sign-in page, and the account is closed again.
	b.press("//main", "Sign out")
	b.wantAt("/signin", "")
	b.wantHeading("Sign in")
	if c := b.cookie(s.URL, "patronage_session"); c != nil && c.Value != "" {
		t.Error("the session cookie is still set after signing out")
	}
	b.open(s.URL + "/account")
	b.wantAt("/signin", "/account")
	b.wantHeading("Sign in")

	// On a phone the pages fit the screen, and the sign-in fields are wide
	// enough to type in.
	b.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	for _, page := range []string{"/join", "/signin"} {
		b.open(s.URL + page)
		var width float64
		b.evalInto(`document.documentElement.scrollWidth`, &width)
		if width > 390 {
			t.Errorf("%s on a 390px-wide phone is %.0fpx wide: the reader has to scroll sideways", page, width)
		}
	}
	var fields []struct {
		ID    string  `json:"id"`
		Left  float64 `json:"left"`
		Right float64 `json:"right"`
		Width float64 `json:"width"`
	}
	b.evalInto(`[...document.querySelectorAll("main input:not([type=hidden])")].map(e => {
		const r = e.getBoundingClientRect();
		return {id: e.id, left: r.left, right: r.right, width: r.width};
	})`, &fields)
	if len(fields) != 3 {
		t.Errorf("the sign-in page on a phone shows %d fields, want 3 (email; email and name): %+v", len(fields), fields)
	}
	for _, f := range fields {
		if f.Width <= 200 || f.Left < 0 || f.Right > 390 {
			t.Errorf("on a 390px-wide phone, field #%s spans %.0f–%.0fpx (%.0fpx wide); want it on screen and wider than 200px", f.ID, f.Left, f.Right, f.Width)
		}
	}
}

// chromiumPath is the browser the test command installed; without one the
// test is skipped, except in CI, where that is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	chromium := os.Getenv("TEST_CHROMIUM")
	if chromium == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but TEST_CHROMIUM is not set: the pages would go untested in a browser (./scripts/test installs chromium)")
		}
		t.Skip("TEST_CHROMIUM is not set: no browser to test the pages in (./scripts/test installs chromium)")
	}
	return chromium
}

// browser is one headless Chromium tab, driven the way a reader would: by
// the text of links, labels and buttons. Its methods fail the test at once,
// since every later step depends on the page the last one reached.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// openBrowser starts Chromium with a fresh profile and stops it, with every
// process it started, when the test ends. ctx bounds the browser's life.
func openBrowser(t *testing.T, ctx context.Context, execPath string) *browser {
	t.Helper()
	profile := t.TempDir()
	output := &lockedBuffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		// Chromium's crash handlers detach from it and keep their database
		// in $XDG_CONFIG_HOME/chromium: keep that in the profile too, out of
		// the user's home and where the leftover check below sees it.
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(profile, "config")),
		chromedp.CombinedOutput(output),
	)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	// Cleanups run last-in first-out: this one runs before t.TempDir removes
	// the profile.
	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := chromedp.Cancel(tabCtx); err != nil && ctx.Err() == nil {
			t.Logf("closing chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
		if left := stopProcessesUsingProfile(closeCtx, profile); len(left) > 0 {
			t.Errorf("chromium processes %v were still running after the browser closed; killed them", left)
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(output.String()), "\n")
			t.Logf("chromium's last output:\n%s", strings.Join(lines[max(0, len(lines)-20):], "\n"))
		}
	})
	// The first action starts the browser.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("start chromium %s: %v\noutput:\n%s", execPath, err, output)
	}
	return &browser{t: t, ctx: tabCtx}
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// open goes to url as if typed in the address bar, and waits for the page
// at the end of any redirects.
func (b *browser) open(url string) {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	b.wantOK(resp, "open "+url)
}

// followLink clicks the link whose text is text, and waits for the page it
// leads to.
func (b *browser) followLink(text string) {
	b.t.Helper()
	b.clickAndWait(fmt.Sprintf(`//a[normalize-space()=%q]`, text), "follow the link "+strconv.Quote(text))
}

// press clicks the button labelled text inside the element at scope (an
// XPath), and waits for the page the form leads to.
func (b *browser) press(scope, text string) {
	b.t.Helper()
	b.clickAndWait(fmt.Sprintf(`%s//button[normalize-space()=%q]`, scope, text), "press "+strconv.Quote(text))
}

func (b *browser) clickAndWait(xpath, what string) {
	b.t.Helper()
	if !b.present(xpath) {
		b.t.Fatalf("cannot %s: there is none on %s", what, b.location())
	}
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.Search(xpath)))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	b.wantOK(resp, what)
}

func (b *browser) wantOK(resp *network.Response, what string) {
	b.t.Helper()
	if resp == nil || resp.Status != 200 {
		var status int64
		if resp != nil {
			status = resp.Status
		}
		b.t.Fatalf("%s: got %d at %s, want 200\npage:\n%s", what, status, b.location(), b.text("body"))
	}
}

// fill types value into the field labelled label (its label text starts with
// label) inside the form at scope (an XPath). It clicks the label, as a
// reader may, so a field its label does not point at cannot be filled.
func (b *browser) fill(scope, label, value string) {
	b.t.Helper()
	labelPath := fmt.Sprintf(`%s//label[starts-with(normalize-space(), %q)]`, scope, label)
	fieldPath := fmt.Sprintf(`%s//*[@id=%s/@for]`, scope, labelPath)
	if !b.present(labelPath) {
		b.t.Fatalf("no field labelled %q on %s", label, b.location())
	}
	b.run(chromedp.Click(chromedp.Search(labelPath)), chromedp.KeyEvent(value))
	got, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.Search(fieldPath)))
	if err != nil {
		b.t.Fatalf("read the field labelled %q: %v", label, err)
	}
	if got != value {
		b.t.Fatalf("the field labelled %q holds %q after typing %q into it", label, got, value)
	}
}

// present reports whether xpath matches an element now, without waiting.
func (b *browser) present(xpath string) bool {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](fmt.Sprintf(
		`document.evaluate(%q, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null).snapshotLength`, xpath)))
	if err != nil {
		b.t.Fatalf("look for %s: %v", xpath, err)
	}
	return n > 0
}

func (b *browser) wantHeading(want string) {
	b.t.Helper()
	if got := strings.TrimSpace(b.text("main h1")); got != want {
		b.t.Fatalf("the page at %s is headed %q, want %q", b.location(), got, want)
	}
}

func (b *browser) wantText(want string) {
	b.t.Helper()
	if got := b.text("main"); !strings.Contains(got, want) {
		b.t.Errorf("the page at %s does not say %q; it says:\n%s", b.location(), want, got)
	}
}

// wantAt checks the page's path and, unless next is empty, where it sends
// the reader next.
func (b *browser) wantAt(path, next string) {
	b.t.Helper()
	loc := b.location()
	u, err := url.Parse(loc)
	if err != nil || u.Path != path || next != "" && u.Query().Get("next") != next {
		want := path
		if next != "" {
			want += "?next=" + next
		}
		b.t.Fatalf("the browser is at %s, want %s", loc, want)
	}
}

// text is what the reader sees in the first element matching css.
func (b *browser) text(css string) string {
	b.t.Helper()
	return b.eval(fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, css))
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("read the location: %v", err)
	}
	return loc
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	var s string
	b.evalInto(js, &s)
	return s
}

func (b *browser) evalInto(js string, v any) {
	b.t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		b.t.Fatalf("evaluate %s: decode %s: %v", js, raw, err)
	}
}

// cookie is the browser's cookie called name for pageURL, or nil.
func (b *browser) cookie(pageURL, name string) *network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{pageURL}})
	if err != nil {
		b.t.Fatalf("read cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// signInLinkPattern finds a sign-in link in a mail's text.
var signInLinkPattern = regexp.MustCompile(`https?://\S+/auth/verify\?\S+`)

// waitForSignInLink returns the sign-in link the server mailed to email.
// Without SMTP_URL the server logs each mail instead; the mail may be sent
// after the page answers, so the log is checked until it appears.
func waitForSignInLink(t *testing.T, s *server, email string) string {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			var entry struct{ Msg, To, Text string }
			if json.Unmarshal([]byte(line), &entry) != nil || !strings.HasPrefix(entry.Msg, "mail not sent") || entry.To != email {
				continue
			}
			link := signInLinkPattern.FindString(entry.Text)
			if link == "" {
				continue
			}
			if !strings.HasPrefix(link, s.URL+"/") {
				t.Fatalf("the sign-in link %s does not point at the server, %s", link, s.URL)
			}
			return link
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("no sign-in link for %s was mailed (logged) within 10s\nlogs:\n%s", email, s.logs)
		}
	}
}

// freeLoopbackAddr is a loopback address with a port free right now, for a
// server whose BASE_URL must name its port before it listens.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// stopProcessesUsingProfile waits, until ctx ends, for every process started
// with the Chromium profile dir to exit; then it kills, by PID, any still
// running and returns their PIDs. Chromium's helpers can outlive the browser
// process for a moment.
func stopProcessesUsingProfile(ctx context.Context, dir string) []int {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pids := processesUsingProfile(dir)
		if len(pids) == 0 {
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return pids
	}
}

// processesUsingProfile lists the live processes started with the profile
// dir: Chromium passes --user-data-dir=dir to every helper it starts, and
// its crash handlers a database inside dir. (Chromium rewrites its helpers'
// command lines with spaces between the arguments.)
func processesUsingProfile(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil // not Linux: nothing to look at
	}
	flag := regexp.MustCompile(`=` + regexp.QuoteMeta(dir) + `(\x00| |$|/)`)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && flag.Match(cmdline) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// lockedBuffer collects Chromium's output, written from chromedp's
// goroutines, for a failing test to show.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
