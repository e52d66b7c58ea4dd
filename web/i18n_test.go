package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"text/template/parse"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n"
	"github.com/patronage/patronage/internal/i18n/i18ntest"
	"github.com/patronage/patronage/internal/stripeapi/stripefake"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

// trees are the parse trees of a set of templates, each once.
func trees(sets map[string]*template.Template) []*parse.Tree {
	seen := map[string]bool{}
	var out []*parse.Tree
	for _, set := range sets {
		for _, t := range set.Templates() {
			if t.Tree == nil || seen[t.Tree.ParseName+"/"+t.Name()] {
				continue
			}
			seen[t.Tree.ParseName+"/"+t.Name()] = true
			out = append(out, t.Tree)
		}
	}
	return out
}

// Every word on every page is in the catalogues: the templates hold none
// of their own and name only keys the catalogues have, as does the code,
// whose keys made up at run time are listed here.
func TestPagesTakeEveryWordFromTheCatalogue(t *testing.T) {
	s, _ := newTestServer(t)
	all := append(trees(s.pages["en"]), trees(s.embeds["en"])...)
	if len(all) < 15 {
		t.Fatalf("%d templates: want every page's and box's", len(all))
	}
	i18ntest.NoWording(t, true, all...)
	i18ntest.TemplateKeys(t, s.catalog, all...)
	i18ntest.SourceKeys(t, s.catalog, ".")

	var dynamic []string
	for _, f := range pageFields {
		dynamic = append(dynamic, "field."+f)
	}
	for k := range statusOf {
		dynamic = append(dynamic, "error.kind."+string(k))
	}
	for _, interval := range []string{"day", "week", "month", "year"} {
		dynamic = append(dynamic, "dashboard.period."+interval, "dashboard.period.every_"+interval)
	}
	for _, w := range append(problemWordings, errorWordings...) {
		dynamic = append(dynamic, w.key)
	}
	for _, key := range dynamic {
		if !s.catalog.Has(key) {
			t.Errorf("the code makes up the key %s, which no catalogue has", key)
		}
	}
}

var cyrillic = regexp.MustCompile(`\p{Cyrillic}`)

// The errors pages meet read in English exactly as the domain wrote them,
// and in Ukrainian as Ukrainian.
func TestErrorsOnPagesKeepTheirEnglishAndSpeakUkrainian(t *testing.T) {
	s, _ := newTestServer(t)
	en, uk := s.catalog.In("en"), s.catalog.In("uk")
	problems := []struct{ field, problem string }{
		{"email", "is required"}, {"email", "must be a valid email address"},
		{"email", "is required when not signed in, as a valid email address"}, {"name", "must be at most 100 characters"},
		{"title", "is required, at most 200 characters"}, {"name", "must not contain control characters"},
		{"closes_at", "must be after opens_at"}, {"votes_per_patron", "must be from 1 to 50"},
		{"votes_per_patron", "must be a whole number from 1 to 50"}, {"weighting", "must be equal or tier"},
		{"results", "must be live or sealed"}, {"topic_ids", "must name 2 to 50 different topics"},
		{"topic_ids", "topic top_x does not exist or is not proposed"}, {"article_url", "is required with covered: the article's http(s) URL"},
		{"opens_at", "must be a date and time"}, {"action", "must be topic, round, close or covered"},
		{"currency", "must be a currency this tier is offered in"}, {"interval", "must be month or year"},
		{"currency", "this tier has no monthly price in EUR"}, {"currency", "this tier has no yearly price in GBP"},
		{"currency", "must be a three-letter ISO 4217 code"}, {"currency", "XYZ is not a currency Stripe accepts"},
		{"gift_amount", "must be a whole number in JPY"}, {"gift_amount", "must have at most 2 decimal places"},
		{"gift_amount", "must be an amount such as 5 or 5.50"}, {"amount", "must be greater than 0"},
		{"amount", "must be at most 99999999 minor units"}, {"amount", "must be a multiple of 10 for BHD"},
		{"amount", "must be from EUR 1.00 to EUR 10,000.00 (100 to 1000000 minor units)"},
		{"chart", "must be mrr, revenue, cohorts, tiers or at_risk"}, {"currency", "is required while nothing is billed yet"},
		{"language", "must be one of en, uk"},
		{"cursor", "is not a cursor this API gave out"}, // no wording of its own: English as written, Ukrainian in general
	}
	matched := map[string]bool{}
	for _, p := range problems {
		e := errs.InvalidFields(map[string]string{p.field: p.problem})
		want := "The " + strings.ReplaceAll(p.field, "_", " ") + " " + p.problem + "."
		if got := forPerson(en, e); got != want {
			t.Errorf("English for %s %q = %q, want %q", p.field, p.problem, got, want)
		}
		got := forPerson(uk, e)
		if !cyrillic.MatchString(got) || strings.Contains(got, p.problem) {
			t.Errorf("Ukrainian for %s %q = %q", p.field, p.problem, got)
		}
		if key, _, ok := find(problemWordings, en, e, p.problem); ok {
			matched[key] = true
		}
	}
	if got := forPerson(uk, errs.InvalidFields(map[string]string{"amount": "must be from EUR 1.00 to EUR 10,000.00 (100 to 1000000 minor units)"})); got != "Сума внеску має бути від 1,00\u00a0EUR до 10\u00a0000,00\u00a0EUR." {
		t.Errorf("Ukrainian gift range = %q, want the amounts as Ukrainian writes them", got)
	}

	rateLimited := errs.WithCode(errs.RateLimited, "rate_limited", "Too many requests; please try again in 5 minutes.")
	rateLimited.Details = map[string]string{"retry_after": "300"}
	suggestions := errs.WithCode(errs.RateLimited, "rate_limited", "You have made 3 suggestions in the last 30 days; you can suggest again in 5 days.")
	suggestions.Details = map[string]string{"retry_after": fmt.Sprint(int(4.5*86400) + 1)}
	messages := []*errs.Error{rateLimited, suggestions}
	for _, m := range []string{
		"Please try again in a moment.", "Something this service depends on is not answering; please try again in a moment.",
		"Sign-in is briefly unavailable; please try again in a moment.", "Voting is not running on this server.",
		"This page is for the newsroom's staff.", "No round has this id.", "This topic is not in this round.", "This round is not open for votes.",
		"Only patrons vote: become one to have a say.", "You have used every vote you have in this round; withdraw one to vote for another topic.",
		"You have not voted for this topic in this round.", "This round has closed; its results are final.", "No topic has this id.",
		"No tier has this slug.", "There is no billing account yet: nothing has been paid with this account.",
		"This account already has a subscription; change the plan in the billing portal instead.",
		"This account already has a subscription; sign in to change the plan in the billing portal.",
		"Payments are unavailable right now; please try again in a few minutes.", "Payments are not configured: STRIPE_SECRET_KEY is not set.",
		"This request was already made with different details; please start again.",
		"A won topic cannot become declined: only a won topic is covered.", // no wording of its own
	} {
		messages = append(messages, errs.WithCode(errs.Conflict, "conflict", "%s", m))
	}
	for _, e := range messages {
		if got := forPerson(en, e); got != e.Message {
			t.Errorf("English for %q = %q", e.Message, got)
		}
		if got := forPerson(uk, e); !cyrillic.MatchString(got) || strings.Contains(got, e.Message) {
			t.Errorf("Ukrainian for %q = %q", e.Message, got)
		}
		if key, _, ok := find(errorWordings, en, e, e.Message); ok {
			matched[key] = true
		}
	}
	for _, w := range append(problemWordings, errorWordings...) {
		if !matched[w.key] {
			t.Errorf("no sample above meets %s (%s): add one, so its English is held to the domain's", w.key, w.english)
		}
	}
	if got := forPerson(uk, suggestions); got != "За останні 30 днів ви вже запропонували 3 теми; наступну можна буде запропонувати через 5 днів." {
		t.Errorf("Ukrainian suggestion limit = %q", got)
	}
}

// page fetches a page with the given headers.
func page(t *testing.T, h http.Handler, path string, headers ...string) (int, string) {
	t.Helper()
	rec := do(h, "GET", path, "", nil, headers...)
	return rec.Code, rec.Body.String()
}

func TestAPageInTheBrowsersLanguage(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	rec := do(h, "GET", "/signin", "", nil, "Accept-Language", "uk-UA,uk;q=0.9,en;q=0.5")
	body := rec.Body.String()
	for _, want := range []string{`<html lang="uk">`, "<title>Вхід · The Test Times</title>", "Надіслати посилання для входу", "Створити обліковий запис", "«The Test Times» існує завдяки підтримці читачів."} {
		if !strings.Contains(body, want) {
			t.Errorf("/signin in Ukrainian lacks %q", want)
		}
	}
	for _, english := range []string{"Sign in", "Email address", "reader-supported"} {
		if strings.Contains(body, english) {
			t.Errorf("/signin in Ukrainian holds English %q", english)
		}
	}
	if got := rec.Header().Get("Content-Language"); got != "uk" {
		t.Errorf("Content-Language = %q, want uk", got)
	}
	// A language without a catalogue gets the newsroom's default.
	if _, body := page(t, h, "/signin", "Accept-Language", "de-DE,de;q=0.9,fr;q=0.8"); !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "Email me a sign-in link") {
		t.Errorf("/signin in German (no catalogue) is not the English default:\n%s", body)
	}
	if _, body := page(t, h, "/embed/vote", "Accept-Language", "uk"); !strings.Contains(body, `<html lang="uk">`) || !strings.Contains(body, "Зараз немає відкритого голосування.") {
		t.Errorf("/embed/vote in Ukrainian:\n%s", body)
	}
}

// DEFAULT_LANGUAGE is what a reader gets whose browser asks for no
// language there is a catalogue for.
func TestTheNewsroomsDefaultLanguage(t *testing.T) {
	catalog, err := i18n.New("uk")
	if err != nil {
		t.Fatal(err)
	}
	ts := newFullTestServer(t, func(d *Deps) { d.Catalog = catalog })
	for _, accept := range []string{"", "de", "fr-CA,fr;q=0.9"} {
		if _, body := page(t, ts.Handler(), "/join", "Accept-Language", accept); !strings.Contains(body, `<html lang="uk">`) || !strings.Contains(body, "Разовий внесок") {
			t.Errorf("Accept-Language %q with DEFAULT_LANGUAGE=uk: not Ukrainian", accept)
		}
	}
	if _, body := page(t, ts.Handler(), "/join", "Accept-Language", "en-US"); !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "Give once") {
		t.Error("Accept-Language en-US with DEFAULT_LANGUAGE=uk: not English")
	}
}

// setLanguage sets the member's language from the account page's form.
func setLanguage(t *testing.T, h http.Handler, cookie *http.Cookie, language string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	return do(h, "POST", "/account/language", "application/x-www-form-urlencoded", strings.NewReader("language="+language),
		append([]string{"Cookie", withCookie(cookie), "Sec-Fetch-Site", "same-origin"}, headers...)...)
}

// The member's own choice on the account page comes before their
// browser's, for pages and for mail.
func TestTheMembersLanguageWinsOverTheBrowsers(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	cookie := signUpAndSignIn(t, ts, "olena@example.org")
	me := []string{"Cookie", withCookie(cookie)}

	if _, body := page(t, h, "/account", append(me, "Accept-Language", "uk")...); !strings.Contains(body, "Ваш кабінет") ||
		!strings.Contains(body, `<option value="en" lang="en">English</option>`) || !strings.Contains(body, `<option value="uk" lang="uk">Українська</option>`) {
		t.Fatalf("/account with no choice and a Ukrainian browser:\n%s", body)
	}
	if rec := setLanguage(t, h, cookie, "en", "Accept-Language", "uk"); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/account" {
		t.Fatalf("choosing English = %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	_, body := page(t, h, "/account", append(me, "Accept-Language", "uk")...)
	if !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "Your account") || !strings.Contains(body, `<option value="en" lang="en" selected>English</option>`) {
		t.Errorf("/account after choosing English, from a Ukrainian browser, is not English:\n%s", body)
	}
	// A sign-in mail goes in the member's language, whatever the request's.
	if rec := postJSON(h, "/api/v1/auth/magic-link", `{"email":"olena@example.org"}`, "Accept-Language", "uk"); rec.Code != http.StatusAccepted {
		t.Fatalf("magic link = %d", rec.Code)
	}
	if m := ts.outbox.next(t); m.Subject != "Your sign-in link for The Test Times" {
		t.Errorf("sign-in mail to a member who chose English, asked from a Ukrainian browser: subject %q", m.Subject)
	}

	setLanguage(t, h, cookie, "uk")
	code, body := page(t, h, "/account", append(me, "Accept-Language", "en-GB,en")...)
	if code != http.StatusOK || !strings.Contains(body, `<html lang="uk">`) || !strings.Contains(body, "Мова сторінок і листів") ||
		!strings.Contains(body, `<option value="uk" lang="uk" selected>Українська</option>`) {
		t.Errorf("/account after choosing Ukrainian, from an English browser, is not Ukrainian:\n%s", body)
	}
	// A language without a catalogue is refused, in the member's language.
	rec := setLanguage(t, h, cookie, "klingon")
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "Такої мови немає; оберіть одну з цих: en, uk.") {
		t.Errorf("choosing klingon = %d\n%s", rec.Code, rec.Body)
	}
	// Clearing the choice hands it back to the browser.
	setLanguage(t, h, cookie, "")
	if _, body := page(t, h, "/account", append(me, "Accept-Language", "en")...); !strings.Contains(body, `<html lang="en">`) {
		t.Error("/account after clearing the choice does not follow the browser")
	}
}

// The member's language through the API: PATCH /api/v1/me sets or clears
// it, and GET /api/v1/me shows it.
func TestTheMembersLanguageThroughTheAPI(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	cookie := signUpAndSignIn(t, ts, "api@example.org")
	patch := func(body string) *httptest.ResponseRecorder {
		return do(h, "PATCH", "/api/v1/me", "application/json", strings.NewReader(body), "Cookie", withCookie(cookie), "Sec-Fetch-Site", "same-origin")
	}
	language := func(rec *httptest.ResponseRecorder) *string {
		t.Helper()
		var out struct{ Member struct{ Language *string } }
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("= %d %s", rec.Code, rec.Body)
		}
		return out.Member.Language
	}
	if got := language(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie))); got != nil {
		t.Errorf("a new member's language = %q, want null", *got)
	}
	if got := language(patch(`{"language":"uk"}`)); got == nil || *got != "uk" {
		t.Errorf("after setting uk: %v", got)
	}
	if got := language(patch(`{}`)); got == nil || *got != "uk" {
		t.Errorf("a PATCH without language changed it: %v", got)
	}
	if got := language(do(h, "GET", "/api/v1/me", "", nil, "Cookie", withCookie(cookie))); got == nil || *got != "uk" {
		t.Errorf("GET /api/v1/me after setting uk: %v", got)
	}
	for _, bad := range []string{`{"language":"de"}`, `{"language":5}`, `{"language":"uk","name":"x"}`} {
		rec := patch(bad)
		if rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("PATCH %s = %d %s, want 422", bad, rec.Code, rec.Body)
			continue
		}
		if e := decodeError(t, rec); len(e.Fields) != 1 {
			t.Errorf("PATCH %s: fields %v, want the offending one", bad, e.Fields)
		}
	}
	if e := decodeError(t, patch(`{"language":"de"}`)); e.Fields["language"] == "" {
		t.Errorf("an unknown language does not name the language field: %v", e.Fields)
	}
	if got := language(patch(`{"language":null}`)); got != nil {
		t.Errorf("after null: %q, want null", *got)
	}
	if rec := do(h, "PATCH", "/api/v1/me", "application/json", strings.NewReader(`{"language":"uk"}`)); rec.Code != http.StatusUnauthorized {
		t.Errorf("PATCH signed out = %d, want 401", rec.Code)
	}
}

// A sign-in mail to a member who has not chosen a language goes in the
// language the request was answered in.
func TestASignInMailSpeaksTheRequestsLanguage(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	if rec := postJSON(h, "/api/v1/members", `{"email":"nova@example.org"}`, "Accept-Language", "uk"); rec.Code != http.StatusAccepted {
		t.Fatalf("sign-up = %d", rec.Code)
	}
	m := ts.outbox.next(t)
	if m.Subject != "Ваше посилання для входу — «The Test Times»" || !strings.Contains(m.Text, "діятиме тільки 15 хвилин") || !strings.Contains(m.HTML, `<html lang="uk">`) {
		t.Errorf("sign-up mail from a Ukrainian browser: %q\n%s", m.Subject, m.Text)
	}
	rec := do(h, "POST", "/signin", "application/x-www-form-urlencoded", strings.NewReader("email=nova%40example.org"), "Accept-Language", "de")
	if rec.Code != http.StatusOK {
		t.Fatalf("sign-in form = %d", rec.Code)
	}
	if m := ts.outbox.next(t); m.Subject != "Your sign-in link for The Test Times" {
		t.Errorf("sign-in mail from a German browser: %q, want the English default", m.Subject)
	}
}

// A reader who pays from a Ukrainian page, before any account, joins with
// Ukrainian as the language of their mail, which has no browser to ask;
// their pages still follow the browser, and a language they choose later
// wins.
func TestAReaderWhoJoinsFromAUkrainianPageGetsUkrainianMail(t *testing.T) {
	fake := stripefake.New(t)
	ts := newStripeTestServer(t, fake.Client(t))
	h := ts.Handler()
	admin, _ := staffSetup(t, ts, members.RoleAdmin)
	postJSON(h, "/api/v1/staff/tiers", coffeeTier, "Authorization", "Bearer "+admin)
	if rec := postJSON(h, "/api/v1/checkout/subscription", `{"tier":"coffee","interval":"month","currency":"EUR","email":"oksana@example.org"}`,
		"Accept-Language", "uk-UA,uk;q=0.9"); rec.Code != http.StatusCreated {
		t.Fatalf("checkout = %d %s", rec.Code, rec.Body)
	}
	rec := do(h, "POST", "/join/gift", "application/x-www-form-urlencoded", strings.NewReader("amount=5&currency=EUR&email=dmytro%40example.org"), "Accept-Language", "en")
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("gift form = %d %s", rec.Code, rec.Body)
	}
	ctx := context.Background()
	oksana, err := ts.members.FindMemberByEmail(ctx, "oksana@example.org")
	if err != nil {
		t.Fatal(err)
	}
	dmytro, err := ts.members.FindMemberByEmail(ctx, "dmytro@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if oksana.Language != "" || oksana.MailLanguage() != "uk" || dmytro.MailLanguage() != "en" {
		t.Errorf("mail languages = %q (chosen %q), %q; want uk (none chosen), en", oksana.MailLanguage(), oksana.Language, dmytro.MailLanguage())
	}
	if _, err := ts.members.SetLanguage(ctx, oksana.ID, "en"); err != nil {
		t.Fatal(err)
	}
	if oksana, _ = ts.members.FindMemberByEmail(ctx, "oksana@example.org"); oksana.MailLanguage() != "en" {
		t.Errorf("after choosing English, mail language = %q", oksana.MailLanguage())
	}
}

// Counts on the vote page take Ukrainian's plural forms: 5 голосів, 3
// голоси, 1 голос.
func TestTheVotePageCountsInUkrainian(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	f := newRouteFixture(t, ts)
	// The fixture's round closes, so the page shows this one.
	if rec := postJSON(h, "/api/v1/staff/rounds/"+f.round+"/close", "", "Authorization", "Bearer "+f.adminToken); rec.Code != http.StatusOK {
		t.Fatalf("close the fixture's round = %d %s", rec.Code, rec.Body)
	}
	topics := []string{f.topic(t, "Мости"), f.topic(t, "Школи"), f.topic(t, "Парки"), f.topic(t, "Вода"), f.topic(t, "Лікарні")}
	body := fmt.Sprintf(`{"title":"Весна","votes_per_patron":5,"opens_at":%q,"closes_at":%q,"topic_ids":["%s"]}`,
		time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), strings.Join(topics, `","`))
	var round struct{ Round struct{ ID string } }
	if rec := postJSON(h, "/api/v1/staff/rounds", body, "Authorization", "Bearer "+f.adminToken); rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &round) != nil {
		t.Fatalf("create round = %d %s", rec.Code, rec.Body)
	}
	if _, err := ts.members.SetLanguage(context.Background(), f.patron.ID, "uk"); err != nil {
		t.Fatal(err)
	}
	cookie := f.session(t, f.patron)
	vote := func(topic string) {
		t.Helper()
		rec := do(h, "POST", "/vote/"+round.Round.ID, "application/x-www-form-urlencoded", strings.NewReader("topic_id="+topic),
			"Cookie", cookie, "Sec-Fetch-Site", "same-origin")
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("vote = %d %s", rec.Code, rec.Body)
		}
	}
	wants := []struct {
		votes int
		want  string
	}{
		{0, "У вас лишилося <strong>5</strong> голосів."},
		{2, "У вас лишилося <strong>3</strong> голоси."},
		{4, "У вас лишився <strong>1</strong> голос."},
	}
	cast := 0
	for _, w := range wants {
		for ; cast < w.votes; cast++ {
			vote(topics[cast])
		}
		_, body := page(t, h, "/vote", "Cookie", cookie, "Accept-Language", "en")
		if !strings.Contains(body, w.want) {
			t.Errorf("after %d votes the page does not say %q:\n%s", w.votes, w.want, body[strings.Index(body, "<main>"):])
		}
	}
	_, body = page(t, h, "/vote", "Cookie", cookie)
	for _, want := range []string{"Кожен меценат має 5 голосів.", ">1 голос</p>", ">0 голосів</p>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the vote page lacks %q", want)
		}
	}
}

// Errors on pages speak the reader's language; in English they read as
// before.
func TestFormErrorsInTheReadersLanguage(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	form := func(path, values string, headers ...string) (int, string) {
		rec := do(h, "POST", path, "application/x-www-form-urlencoded", strings.NewReader(values), headers...)
		return rec.Code, rec.Body.String()
	}
	if code, body := form("/signin", "email=broken", "Accept-Language", "uk"); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, "У полі «Електронна пошта» має бути дійсна адреса електронної пошти.") {
		t.Errorf("a bad email in Ukrainian = %d\n%s", code, body)
	}
	if code, body := form("/signin", "email=broken"); code != http.StatusUnprocessableEntity || !strings.Contains(body, "The email must be a valid email address.") {
		t.Errorf("a bad email in English = %d\n%s", code, body)
	}
	// Amounts are typed as the page's language writes them: 0,50 is half a
	// euro in Ukrainian, below the smallest gift, not fifty euros.
	if code, body := form("/join/gift", "amount=0%2C50&currency=EUR", "Accept-Language", "uk"); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, "Сума внеску має бути від 1,00\u00a0EUR до 10\u00a0000,00\u00a0EUR.") {
		t.Errorf("a gift of 0,50 in Ukrainian = %d\n%s", code, body)
	}
	if code, body := form("/join/gift", "amount=abc&currency=EUR", "Accept-Language", "uk"); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, "Вкажіть суму, наприклад 5 або 5,50.") {
		t.Errorf("a gift of abc in Ukrainian = %d\n%s", code, body)
	}
	if code, body := form("/join/gift", "amount=abc&currency=EUR"); code != http.StatusUnprocessableEntity ||
		!strings.Contains(body, "The gift amount must be an amount such as 5 or 5.50.") {
		t.Errorf("a gift of abc in English = %d\n%s", code, body)
	}
}

// Amounts on the join page are written as the page's language writes
// them.
func TestTheJoinPageWritesAmountsInItsLanguage(t *testing.T) {
	ts := newFullTestServer(t)
	h := ts.Handler()
	_, body := page(t, h, "/join", "Accept-Language", "uk")
	if !strings.Contains(body, "(від 1,00\u00a0EUR до 10\u00a0000,00\u00a0EUR)") {
		t.Errorf("the gift range in Ukrainian:\n%s", body)
	}
	_, body = page(t, h, "/join", "Accept-Language", "en")
	if !strings.Contains(body, "(EUR 1.00 to EUR 10,000.00)") {
		t.Errorf("the gift range in English:\n%s", body)
	}
}

// Every page and box renders in every language with data that takes each
// of its branches: a message with the wrong values, a plural form a
// language lacks or a key a catalogue lacks fails here, not on a reader's
// page.
func TestEveryPageRendersInEveryLanguage(t *testing.T) {
	s, _ := newTestServer(t)
	now := time.Date(2026, time.March, 2, 15, 4, 0, 0, time.UTC)
	until := now.AddDate(0, 1, 0)
	round := &voting.Round{ID: "rnd_1", Title: "Весна", Description: "Опис", OpensAt: now, ClosesAt: until, VotesPerPatron: 3, Weighting: "tier", Results: "sealed", TopicIDs: []string{"t1", "t2"}}
	topics := []voteTopic{{ID: "t1", Title: "Мости", Summary: "S", Votes: 1, Mine: true, Won: true, Covered: "https://news.example.org/a"}, {ID: "t2", Title: "Школи", Votes: 5}}
	staff := &members.Member{ID: "mem_1", Email: "staff@example.org", Name: "Олена", Role: members.RoleAdmin, StripeCustomerID: "cus_1", Language: "uk"}
	reader := &members.Member{ID: "mem_2", Email: "reader@example.org"}
	ltv := int64(1234)
	rate := 0.125
	dashboard := &dashboardView{Currency: "EUR", From: "2026-01", To: "2026-03", Months: 3, At: "now",
		Currencies: []currencyLink{{Code: "EUR", URL: "/staff", Current: true}, {Code: "JPY", URL: "/staff?currency=jpy"}},
		Spans:      []currencyLink{{Code: "6", URL: "/staff?months=6"}},
		Headlines:  headlines(s.catalog.In("en"), currencySummaryJSON{Currency: "eur", MRR: 2000, LTV: &ltv, ChurnRate30d: &rate, ChurnedPatrons: 1, PastDue: 2}),
		Reporting:  &reportingJSON{Currency: "eur", MRR: 5000, PayingPatrons: 1, MissingRates: []string{"jpy"}}, ReportMRR: "EUR 50.00", ReportMissing: "JPY",
		MRRRows: []mrrRow{{Month: "2026-03"}}, RevRows: []revenueRow{{Month: "2026-03"}},
		TierRows: []tierRow{{Tier: "coffee", Period: "monthly"}, {Period: "yearly"}},
		Cohorts:  []cohortRow{{Month: "2026-01", Patrons: 2, Cells: []cohortCell{{Month: "2026-01", Retained: 1, Text: "50%"}}}}, MaxAge: []int{0},
		AtRisk: []atRiskRow{{ID: "mem_2", Email: "reader@example.org"}}, AtRiskAll: false}
	variants := []pageData{
		{Title: "T", Member: staff, Access: members.Access{Active: true, Tier: "coffee", Until: &until},
			Plan:        &planView{Tier: "Coffee", Price: "EUR 5.00 a month", NextCharge: "EUR 4.00", Date: "2 March 2026", PastDue: true},
			Suggestions: []voting.Suggestion{{Title: "A", Status: "suggested"}, {Title: "B", Status: "declined", DeclineReason: "Ні"}, {Title: "C", Status: "declined"}, {Title: "D", Status: "proposed"}},
			Languages:   []languageOption{{Code: "en", Name: "English"}, {Code: "uk", Name: "Українська"}},
			Join: &joinData{Tiers: []joinTier{{Slug: "coffee", Name: "Coffee", Description: "D", Benefits: []string{"B"}, Price: "EUR 5.00"}, {Slug: "lunch", Name: "Lunch"}},
				Currencies: []string{"EUR"}, Currency: "EUR", Interval: "year", SignedIn: true, GiftMin: "EUR 1.00", GiftMax: "EUR 100.00"},
			Vote: &voteData{Round: round, Topics: topics, ShowTally: true, SignedIn: true, CanVote: true, VotesLeft: 2, Closed: true, Voters: 21, Recent: []voting.Round{*round}},
			Staff: &staffVotingData{Proposed: []voting.Topic{{ID: "t1", Title: "A", Summary: "S"}, {ID: "t2", Title: "B"}}, Won: []voting.Topic{{ID: "t3", Title: "W"}},
				Rounds:      []staffRound{{Round: *round, State: "open"}, {Round: *round, State: "closed"}, {Round: *round, State: "planned"}},
				Suggestions: []voting.Suggestion{{ID: "t4", Title: "S", Summary: "Z", CreatedAt: now}}},
			Dashboard: dashboard, Form: map[string]string{"title": "x", "weighting": "tier", "results": "sealed"}, Fields: map[string]string{"title": "is required"},
			Email: "reader@example.org", Next: "/vote", Message: "M", Error: "E"},
		{Title: "T", Member: reader, Plan: &planView{Tier: "Coffee", Price: "P", Ending: true, Date: "D"},
			Join: &joinData{Interval: "month", Currencies: []string{"EUR"}, Currency: "EUR"},
			Vote: &voteData{Round: round, Topics: topics, SignedIn: true}, Staff: &staffVotingData{},
			Dashboard: &dashboardView{Empty: true}, Form: map[string]string{}},
		{Title: "T", Member: reader, Plan: &planView{Tier: "Coffee", Price: "P", Date: "D"}, Join: &joinData{Interval: "month", Tiers: []joinTier{{Slug: "c", Name: "C", Price: "P"}}},
			Vote: &voteData{ShowTally: true}, Dashboard: &dashboardView{Currency: "EUR", AtRiskAll: true}, Form: map[string]string{}},
	}
	rendered := 0
	for _, lang := range s.catalog.Languages() {
		for name, tmpl := range s.pages[lang] {
			for i, d := range variants {
				if name == "vote_results.html" && d.Vote.Round == nil {
					continue // a results page is always of a round
				}
				d.Newsroom = "The Test Times"
				var b strings.Builder
				if err := tmpl.ExecuteTemplate(&b, "layout", d); err != nil {
					t.Errorf("%s in %s, variant %d: %v", name, lang, i, err)
					continue
				}
				rendered++
				if !strings.Contains(b.String(), `<html lang="`+lang+`">`) {
					t.Errorf("%s in %s: not marked %s", name, lang, lang)
				}
			}
		}
		for name, tmpl := range s.embeds[lang] {
			for i, d := range variants {
				if err := tmpl.ExecuteTemplate(new(strings.Builder), "layout", d); err != nil {
					t.Errorf("embed/%s in %s, variant %d: %v", name, lang, i, err)
				}
			}
		}
	}
	t.Logf("FIGURES pages: %d renderings in %d languages", rendered, len(s.catalog.Languages()))
}
