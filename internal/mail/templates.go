package mail

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
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

// Templates renders the named message templates. All templates are
// embedded text/template and html/template files, so names and links are
// escaped in the HTML part.
type Templates struct {
	newsroom string
	text     map[string]*texttemplate.Template
	html     map[string]*htmltemplate.Template
}

// NewTemplates parses every template. newsroom is the display name used in
// subjects and bodies, e.g. "The Daily Example".
func NewTemplates(newsroom string) (*Templates, error) {
	newsroom = strings.TrimSpace(newsroom)
	if newsroom == "" {
		return nil, errors.New("new mail templates: newsroom name is empty")
	}
	t := &Templates{
		newsroom: newsroom,
		text:     make(map[string]*texttemplate.Template),
		html:     make(map[string]*htmltemplate.Template),
	}
	for _, name := range []string{signInLink, welcomePatron, paymentFailed, trialEnding, topicCovered, endpointOff} {
		text, err := texttemplate.ParseFS(templateFS, "templates/layout.txt", "templates/"+name+".txt")
		if err != nil {
			return nil, fmt.Errorf("parse mail template %s: %w", name, err)
		}
		html, err := htmltemplate.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse mail template %s: %w", name, err)
		}
		t.text[name], t.html[name] = text, html
	}
	return t, nil
}

// SignInLink is the mail carrying a one-time sign-in link valid for expiresIn.
func (t *Templates) SignInLink(to, link string, expiresIn time.Duration) (Message, error) {
	if link == "" {
		return Message{}, errors.New("render sign-in link: link is empty")
	}
	if expiresIn <= 0 {
		return Message{}, fmt.Errorf("render sign-in link: expiresIn %v is not positive", expiresIn)
	}
	return t.render(signInLink, to, struct {
		Newsroom, Link, ExpiresIn string
	}{t.newsroom, link, humanDuration(expiresIn)})
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
	}{t.newsroom, strings.TrimSpace(name), FormatAmount(amountMinor, currency), updateURL})
}

// EndpointDisabled tells an admin that a webhook endpoint was disabled
// after failing, and how to bring it back.
func (t *Templates) EndpointDisabled(to, id, url, reason string) (Message, error) {
	return t.render(endpointOff, to, struct {
		Newsroom, ID, URL, Reason string
	}{t.newsroom, id, url, reason})
}

// TrialEnding warns that a trial ends; name may be empty. endsAt is shown as
// a date in its own location, so pass it in the patron's time zone if known.
func (t *Templates) TrialEnding(to, name, tierName string, endsAt time.Time, accountURL string) (Message, error) {
	if accountURL == "" {
		return Message{}, errors.New("render trial ending: account URL is empty")
	}
	return t.render(trialEnding, to, struct {
		Newsroom, Name, Tier, EndsOn, AccountURL string
	}{t.newsroom, strings.TrimSpace(name), tierName, endsAt.Format("Monday 2 January 2006"), accountURL})
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
	var subject, text, html strings.Builder
	if err := t.text[name].ExecuteTemplate(&subject, "subject", data); err != nil {
		return Message{}, fmt.Errorf("render %s subject: %w", name, err)
	}
	if err := t.text[name].ExecuteTemplate(&text, "layout.txt", data); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", name, err)
	}
	if err := t.html[name].ExecuteTemplate(&html, "layout.html", data); err != nil {
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
func humanDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int64(d/time.Minute), "minute")
	default:
		return plural(max(int64(d/time.Second), 1), "second")
	}
}

func plural(n int64, unit string) string {
	s := strconv.FormatInt(n, 10) + " " + unit
	if n != 1 {
		s += "s"
	}
	return s
}
