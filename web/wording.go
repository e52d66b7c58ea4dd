package web

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/i18n"
)

// Errors reach pages in the reader's language. The domain packages write
// an error's message, and each offending field's problem, in English for
// the API (whose clients are developers); a page finds the catalogue
// message for it here, by the English text, matched whole. A regexp's
// named groups are the message's values (a group named Count is the plural
// count). What no line matches still reads right: in English as the
// domain wrote it, in another language as a sentence about the kind of
// error (error.kind.*) or the field (problem.other).

// wording is one English text and its catalogue key.
type wording struct {
	english *regexp.Regexp
	key     string
	// values computes the message's values where the groups are not
	// enough; nil takes the groups.
	values func(l *i18n.Localizer, e *errs.Error, groups map[string]string) []any
}

func words(english, key string) wording {
	return wording{english: regexp.MustCompile("^" + english + "$"), key: key}
}

// problemWordings are the problems of fields that page forms can meet.
var problemWordings = []wording{
	words(`is required`, "problem.required"),
	words(`must be a valid email address`, "problem.valid_email"),
	words(`is required when not signed in, as a valid email address`, "problem.email_signed_out"),
	words(`must be at most (?P<Count>\d+) characters`, "problem.at_most_chars"),
	words(`is required, at most (?P<Count>\d+) characters`, "problem.required_at_most_chars"),
	words(`must not contain control characters`, "problem.control_chars"),
	words(`must be after opens_at`, "problem.after_opens"),
	words(`must be from (?P<Min>\d+) to (?P<Max>\d+)`, "problem.from_to"),
	words(`must be a whole number from (?P<Min>\d+) to (?P<Max>\d+)`, "problem.whole_from_to"),
	words(`must be equal or tier`, "problem.weighting"),
	words(`must be live or sealed`, "problem.results"),
	words(`must name (?P<Min>\d+) to (?P<Max>\d+) different topics`, "problem.topic_count"),
	words(`topic (?P<Topic>\S+) does not exist or is not proposed`, "problem.topic_not_proposed"),
	words(`is required with covered: the article's http\(s\) URL`, "problem.article_url"),
	words(`must be a date and time`, "problem.date_time"),
	words(`must be topic, round, close or covered`, "problem.action"),
	words(`must be a currency this tier is offered in`, "problem.tier_currency"),
	words(`must be month or year`, "problem.interval"),
	words(`this tier has no monthly price in (?P<Currency>[A-Z]{3})`, "problem.no_monthly_price"),
	words(`this tier has no yearly price in (?P<Currency>[A-Z]{3})`, "problem.no_yearly_price"),
	words(`must be a three-letter ISO 4217 code`, "problem.currency_code"),
	words(`(?P<Currency>[A-Z]{3}) is not a currency Stripe accepts`, "problem.currency_unknown"),
	words(`must be a whole number in (?P<Currency>[A-Z]{3})`, "problem.whole_in"),
	words(`must have at most (?P<Count>\d+) decimal places`, "problem.decimals"),
	words(`must be an amount such as 5 or 5\.50`, "problem.amount_example"),
	words(`must be greater than 0`, "problem.positive"),
	words(`must be at most 99999999 minor units`, "problem.too_large"),
	words(`must be a multiple of (?P<Step>\d+) for (?P<Currency>[A-Z]{3})`, "problem.multiple_of"),
	{english: regexp.MustCompile(`^must be from (?P<Currency>[A-Z]{3}) \S+ to [A-Z]{3} \S+ \((?P<MinMinor>\d+) to (?P<MaxMinor>\d+) minor units\)$`),
		key: "problem.gift_range",
		values: func(l *i18n.Localizer, _ *errs.Error, g map[string]string) []any {
			return []any{"Min", l.Money(atoi64(g["MinMinor"]), g["Currency"]), "Max", l.Money(atoi64(g["MaxMinor"]), g["Currency"]),
				"MinMinor", g["MinMinor"], "MaxMinor", g["MaxMinor"]}
		}},
	words(`must be mrr, revenue, cohorts, tiers or at_risk`, "problem.chart"),
	words(`is required while nothing is billed yet`, "problem.currency_while_empty"),
	words(`must be one of (?P<Languages>.+)`, "problem.language"),
}

// errorWordings are the messages of errors without fields that pages can
// meet.
var errorWordings = []wording{
	{english: regexp.MustCompile(`^Too many requests; please try again in .+\.$`), key: "error.too_many_requests",
		values: func(l *i18n.Localizer, e *errs.Error, _ map[string]string) []any {
			return []any{"Wait", waitWords(l, time.Duration(atoi64(e.Details["retry_after"]))*time.Second)}
		}},
	{english: regexp.MustCompile(`^You have made (?P<Made>\d+) suggestions in the last 30 days; you can suggest again in (?P<Days>\d+) days\.$`), key: "error.suggestion_limit",
		values: func(l *i18n.Localizer, _ *errs.Error, g map[string]string) []any {
			return []any{atoi64(g["Made"]), "Wait", l.T("duration.days", atoi64(g["Days"]))}
		}},
	words(`Please try again in a moment\.`, "error.try_again"),
	words(`Something this service depends on is not answering; please try again in a moment\.`, "error.dependency_down"),
	words(`Sign-in is briefly unavailable; please try again in a moment\.`, "error.sign_in_unavailable"),
	words(`Voting is not running on this server\.`, "error.voting_off"),
	words(`This page is for the newsroom's staff\.`, "error.staff_only"),
	words(`No round has this id\.`, "error.round_not_found"),
	words(`This topic is not in this round\.`, "error.topic_not_in_round"),
	words(`This round is not open for votes\.`, "error.round_not_open"),
	words(`Only patrons vote: become one to have a say\.`, "error.patron_required"),
	words(`You have used every vote you have in this round; withdraw one to vote for another topic\.`, "error.vote_budget"),
	words(`You have not voted for this topic in this round\.`, "error.vote_not_found"),
	words(`This round has closed; its results are final\.`, "error.round_closed"),
	words(`No topic has this id\.`, "error.topic_not_found"),
	words(`No tier has this slug\.`, "error.tier_not_found"),
	words(`There is no billing account yet: nothing has been paid with this account\.`, "error.no_billing_account"),
	words(`This account already has a subscription; change the plan in the billing portal instead\.`, "error.already_subscribed"),
	words(`This account already has a subscription; sign in to change the plan in the billing portal\.`, "error.already_subscribed_sign_in"),
	words(`Payments are unavailable right now; please try again in a few minutes\.`, "error.payments_unavailable"),
	words(`Payments are not configured: STRIPE_SECRET_KEY is not set\.`, "error.payments_not_configured"),
	words(`This request was already made with different details; please start again\.`, "error.idempotency"),
}

// pageFields are the fields page forms can name, each with a name of its
// own in the catalogue (field.<name>).
var pageFields = []string{"email", "name", "tier", "interval", "currency", "amount", "gift_amount", "message", "title", "summary",
	"description", "opens_at", "closes_at", "votes_per_patron", "weighting", "results", "topic_ids", "topic_id", "article_url",
	"status", "reason", "action", "months", "chart", "decision", "language"}

// forPerson turns an error into sentences for a page in l's language: each
// offending field in turn ("The email must be a valid email address."),
// else the error's own message.
func forPerson(l *i18n.Localizer, e *errs.Error) string {
	if len(e.Fields) == 0 {
		if key, values, ok := find(errorWordings, l, e, e.Message); ok {
			return l.T(key, values...)
		}
		return l.T("error.kind."+kindKey(e.Kind), "Message", e.Message)
	}
	parts := make([]string, 0, len(e.Fields))
	for field, problem := range e.Fields {
		name := l.T("field.other", "Name", strings.ReplaceAll(field, "_", " "))
		if slices.Contains(pageFields, field) {
			name = l.T("field." + field)
		}
		key, values, ok := find(problemWordings, l, e, problem)
		if !ok {
			key, values = "problem.other", []any{"Problem", problem}
		}
		parts = append(parts, l.T(key, append(values, "Field", name)...))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// find is the key and values of the first wording matching english.
func find(list []wording, l *i18n.Localizer, e *errs.Error, english string) (string, []any, bool) {
	for _, w := range list {
		m := w.english.FindStringSubmatch(english)
		if m == nil {
			continue
		}
		groups := map[string]string{}
		for i, name := range w.english.SubexpNames() {
			if name != "" {
				groups[name] = m[i]
			}
		}
		if w.values != nil {
			return w.key, w.values(l, e, groups), true
		}
		var values []any
		for name, v := range groups {
			if name == "Count" {
				values = append([]any{atoi64(v)}, values...)
				continue
			}
			values = append(values, name, v)
		}
		return w.key, values, true
	}
	return "", nil, false
}

// kindKey is an error kind's part of its fallback key: one of the kinds
// the API maps to a status (statusOf), each with a message of its own.
func kindKey(k errs.Kind) string {
	if _, ok := statusOf[k]; ok {
		return string(k)
	}
	return string(errs.Internal)
}

// waitWords says how long to wait in words, to the minute: "a minute",
// "5 minutes".
func waitWords(l *i18n.Localizer, d time.Duration) string {
	if d < time.Minute {
		return l.T("duration.a_minute")
	}
	return l.T("duration.minutes", int64(d.Round(time.Minute)/time.Minute))
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
