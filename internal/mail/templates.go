package mail

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"github.com/patronage/patronage/internal/i18n"
)

//go:embed templates
var templateFS embed.FS

// The messages, each a pair of files under templates/: name.txt defines
// "subject" and the plain-text "body", name.html the HTML "body". Both are
// wrapped in the matching layout file.
const (
	signInLink    = "sign_in_link"
	welcomePatron = "welcome_patron"
	paymentFailed = "payment_failed"
	trialEnding   = "trial_ending"
	topicCovered  = "topic_covered"
	endpointOff   = "webhook_endpoint_disabled"
)

// Templates renders the named message templates, in every language of the
// catalogue. All templates are embedded text/template and html/template
// files, so names and links are escaped in the HTML part; every word they
// hold is a message of the catalogue (internal/i18n).
type Templates struct {
	newsroom string
	catalog  *i18n.Catalog
	// lang is the language this view writes in; "" for the default.
	lang string
	text map[string]map[string]*texttemplate.Template // by language, then message
	html map[string]map[string]*htmltemplate.Template
}

// NewTemplates parses every template in every language of catalog.
// newsroom is the display name used in subjects and bodies, e.g. "The
// Daily Example".
func NewTemplates(newsroom string, catalog *i18n.Catalog) (*Templates, error) {
	newsroom = strings.TrimSpace(newsroom)
	if newsroom == "" {
		return nil, errors.New("new mail templates: newsroom name is empty")
	}
	if catalog == nil {
		return nil, errors.New("new mail templates: no message catalogue")
	}
	t := &Templates{
		newsroom: newsroom,
		catalog:  catalog,
		text:     make(map[string]map[string]*texttemplate.Template),
		html:     make(map[string]map[string]*htmltemplate.Template),
	}
	for _, lang := range catalog.Languages() {
		funcs := catalog.In(lang).Funcs()
		t.text[lang], t.html[lang] = map[string]*texttemplate.Template{}, map[string]*htmltemplate.Template{}
		for _, name := range names {
			text, err := texttemplate.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.txt", "templates/"+name+".txt")
			if err != nil {
				return nil, fmt.Errorf("parse mail template %s: %w", name, err)
			}
			html, err := htmltemplate.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
			if err != nil {
				return nil, fmt.Errorf("parse mail template %s: %w", name, err)
			}
			t.text[lang][name], t.html[lang][name] = text, html
		}
	}
	return t, nil
}

// names are the messages, each a pair of files under templates/.
var names = []string{signInLink, welcomePatron, paymentFailed, trialEnding, topicCovered, endpointOff}

// In is the templates writing in lang: a member's own setting, else the
// language of the request the mail answers. "", or a language without a
// catalogue, is the newsroom's default language.
func (t *Templates) In(lang string) *Templates {
	view := *t
	view.lang = lang
	return &view
}

// localizer is the language this view writes in.
func (t *Templates) localizer() *i18n.Localizer { return t.catalog.In(t.lang) }

// Trees are the parse trees of every template, text and HTML, for the
// tests that hold their wording to the catalogue.
func (t *Templates) Trees() (text, html []*parse.Tree) {
	lang := t.localizer().Language()
	for _, name := range names {
		for _, tt := range t.text[lang][name].Templates() {
			text = append(text, tt.Tree)
		}
		for _, ht := range t.html[lang][name].Templates() {
			html = append(html, ht.Tree)
		}
	}
	return text, html
}

// SignInLink is the mail carrying a one-time sign-in link valid for expiresIn.
func (t *Templates) SignInLink(to, link string, expiresIn time.Duration) (Message, error) {
	if link == "" {
		return Message{}, errors.New("render sign-in link: link is empty")
	}
	if expiresIn <= 0 {
		return Message{}, fmt.Errorf("render sign-in link: expiresIn %v is not positive", expiresIn)
	}
	lasts, err := humanDuration(t.localizer(), expiresIn)
	if err != nil {
		return Message{}, fmt.Errorf("render sign-in link: %w", err)
	}
	return t.render(signInLink, to, struct {
		Newsroom, Link, ExpiresIn string
	}{t.newsroom, link, lasts})
}

// WelcomePatron thanks a new patron; name may be empty.
func (t *Templates) WelcomePatron(to, name, tierName string, accountURL string) (Message, error) {
	if accountURL == "" {
		return Message{}, errors.New("render welcome patron: account URL is empty")
	}
	return t.render(welcomePatron, to, struct {
		Newsroom, Name, Tier, AccountURL string
	}{t.newsroom, strings.TrimSpace(name), tierName, accountURL})
}

// PaymentFailed asks a patron to update their payment details; name may be
// empty.
func (t *Templates) PaymentFailed(to, name string, amountMinor int64, currency string, updateURL string) (Message, error) {
	if updateURL == "" {
		return Message{}, errors.New("render payment failed: update URL is empty")
	}
	return t.render(paymentFailed, to, struct {
		Newsroom, Name, Amount, UpdateURL string
	}{t.newsroom, strings.TrimSpace(name), t.localizer().Money(amountMinor, currency), updateURL})
}

// EndpointDisabled tells an admin that a webhook endpoint was disabled
// after failing, and how to bring it back.
func (t *Templates) EndpointDisabled(to, id, url, reason string) (Message, error) {
	return t.render(endpointOff, to, struct {
		Newsroom, ID, URL, Reason string
	}{t.newsroom, id, url, reason})
}

// TrialEnding warns that a trial ends; name may be empty. endsAt is shown as
// a date (with its weekday, in the mail's language) in its own location, so
// pass it in the patron's time zone if known.
func (t *Templates) TrialEnding(to, name, tierName string, endsAt time.Time, accountURL string) (Message, error) {
	if accountURL == "" {
		return Message{}, errors.New("render trial ending: account URL is empty")
	}
	return t.render(trialEnding, to, struct {
		Newsroom, Name, Tier, EndsOn, AccountURL string
	}{t.newsroom, strings.TrimSpace(name), tierName, t.localizer().WeekDate(endsAt), accountURL})
}

// TopicCovered tells a patron that a topic they voted for has been covered,
// with the article's link; name may be empty.
func (t *Templates) TopicCovered(to, name, topic, articleURL string) (Message, error) {
	if articleURL == "" {
		return Message{}, errors.New("render topic covered: article URL is empty")
	}
	return t.render(topicCovered, to, struct {
		Newsroom, Name, Topic, ArticleURL string
	}{t.newsroom, strings.TrimSpace(name), topic, articleURL})
}

func (t *Templates) render(name, to string, data any) (Message, error) {
	lang := t.localizer().Language()
	var subject, text, html strings.Builder
	if err := t.text[lang][name].ExecuteTemplate(&subject, "subject", data); err != nil {
		return Message{}, fmt.Errorf("render %s subject: %w", name, err)
	}
	if err := t.text[lang][name].ExecuteTemplate(&text, "layout.txt", data); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", name, err)
	}
	if err := t.html[lang][name].ExecuteTemplate(&html, "layout.html", data); err != nil {
		return Message{}, fmt.Errorf("render %s HTML: %w", name, err)
	}
	return Message{
		To: to,
		// A subject is one header line whatever a tier name holds.
		Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}

// humanDuration says how long a link lasts in words: "15 minutes", "1 hour".
// It rounds down (to no less than a second), so the mail does not promise
// more time than there is.
func humanDuration(l *i18n.Localizer, d time.Duration) (string, error) {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return l.Text("duration.hours", int64(d/time.Hour))
	case d >= time.Minute:
		return l.Text("duration.minutes", int64(d/time.Minute))
	default:
		return l.Text("duration.seconds", max(int64(d/time.Second), 1))
	}
}
