package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var (
	tokenPattern = regexp.MustCompile(`pat_[A-Za-z0-9_-]{43}`)
	linkPattern  = regexp.MustCompile(`http://\S+/auth/verify\?token=\S+`)
	tokenID      = regexp.MustCompile(`API token (tok_[a-z0-9]+)`)
)

func TestAdminCreateGivesAWorkingLinkAndToken(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	s := startServer(t, env)
	env["BASE_URL"] = s.URL

	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "Editor@Example.org", "--role", "admin")
	if code != 0 {
		t.Fatalf("admin create: exit %d: %s", code, stderr)
	}
	token := tokenPattern.FindString(out)
	link := linkPattern.FindString(out)
	if token == "" || link == "" || !strings.Contains(out, "Created admin account editor@example.org") {
		t.Fatalf("admin create printed:\n%s", out)
	}

	// The token works on the staff API of the running server.
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/staff/members?email=editor@example.org", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("staff API with the new token = %d", resp.StatusCode)
	}

	// The link signs in on the running server, even on the in-process Redis.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Errorf("following the printed link = %d, cookies %v; want a session", resp.StatusCode, resp.Cookies())
	}

	// Revoking it turns the token away.
	id := tokenID.FindStringSubmatch(out)[1]
	if out, stderr, code := runCommand(t, env, "admin", "revoke-token", id); code != 0 || !strings.Contains(out, "Revoked API token "+id) {
		t.Fatalf("revoke-token: exit %d %s %s", code, out, stderr)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("staff API with a revoked token = %d, want 401", resp.StatusCode)
	}
}

func TestAdminCreateWithoutARunningServerSaysWhyThereIsNoLink(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	out, stderr, code := runCommand(t, env, "admin", "create", "--email", "desk@example.org", "--role", "staff")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if linkPattern.MatchString(out) || !strings.Contains(out, "No sign-in link") || tokenPattern.FindString(out) == "" {
		t.Errorf("output:\n%s\nwant a token, no link, and the reason", out)
	}
}

func TestAdminCommandRefusesBadInput(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	for _, args := range [][]string{
		{"admin"},
		{"admin", "create"},
		{"admin", "create", "--email", "not-an-email"},
		{"admin", "create", "--email", "a@example.org", "--role", "patron"},
		{"admin", "revoke-token"},
		{"admin", "revoke-token", "tok_unknown"},
		{"admin", "promote"},
		{"admin", "create", "--email", "a@example.org", "--now"},
		{"admin", "rotate-status-key", "key_1"},
	} {
		if _, stderr, code := runCommand(t, env, args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a reason", args, code, stderr)
		}
	}
	if out, _, code := runCommand(t, env, "admin", "--help"); code != 0 || !strings.Contains(out, "admin create --email") {
		t.Errorf("admin --help: exit %d\n%s", code, out)
	}
}

// A status key that leaked is replaced from the command line: each run
// leaves only the new key it names.
func TestAdminReplacesALeakedStatusKeyAtOnce(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	keyID := regexp.MustCompile(`Key (key_[a-z0-9]+) signs status tokens from now on`)
	var ids []string
	for range 2 {
		out, stderr, code := runCommand(t, env, "admin", "rotate-status-key", "--now")
		m := keyID.FindStringSubmatch(out)
		if code != 0 || m == nil || !strings.Contains(out, "gone from the key set") {
			t.Fatalf("rotate-status-key --now: exit %d\n%s%s", code, out, stderr)
		}
		ids = append(ids, m[1])
	}
	var stored []string
	rows, err := openEnvDB(t, env).Query(`SELECT id FROM signing_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, id)
	}
	if len(stored) != 1 || stored[0] != ids[1] {
		t.Errorf("after two replacements the keys stored are %v, want only the last, %s", stored, ids[1])
	}
}

func TestWebhooksReplayQueuesOrSaysWhy(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	if _, stderr, code := runCommand(t, env, "webhooks", "replay", "evt_unknown"); code != 2 || !strings.Contains(stderr, "No stored event") {
		t.Errorf("replay of an unknown event: exit %d, %q", code, stderr)
	}
	if out, _, code := runCommand(t, env, "webhooks", "--help"); code != 0 || !strings.Contains(out, "webhooks replay EVENT_ID") {
		t.Errorf("webhooks --help: exit %d %s", code, out)
	}
}
