package i18n

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"

	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	msgtemplate "github.com/nicksnyder/go-i18n/v2/i18n/template"
)

// Localizer speaks one language of a catalogue.
type Localizer struct {
	code string
	loc  *goi18n.Localizer
	f    formats
}

// Language is the localizer's language code, as <html lang> wants it.
func (l *Localizer) Language() string { return l.code }

// strict makes a message naming a value it was not given an error, not
// "<no value>".
var strict = &msgtemplate.TextParser{Option: "missingkey=error"}

// Text is the message key in l's language. args are an optional count
// first — an integer, which picks the plural form and is the message's
// {{.Count}} — then the names and values the message refers to ("Newsroom",
// name, …). A key or plural form missing from the language's catalogue and
// a value the message needs but was not given are errors: the text of
// another language is never passed off as this one's.
func (l *Localizer) Text(key string, args ...any) (string, error) {
	count, data, err := messageData(args)
	if err != nil {
		return "", fmt.Errorf("message %q: %w", key, err)
	}
	cfg := &goi18n.LocalizeConfig{MessageID: key, TemplateData: data, TemplateParser: strict}
	if count != nil {
		cfg.PluralCount = count
	}
	text, tag, err := l.loc.LocalizeWithTag(cfg)
	if err != nil {
		return "", fmt.Errorf("message %q in %s: %w", key, l.code, err)
	}
	if tag.String() != l.code {
		return "", fmt.Errorf("message %q: not in the %s catalogue", key, l.code)
	}
	return text, nil
}

// T is Text for wording the code cannot do without. It panics where Text
// fails: its keys are constants of the code, and the tests hold every one
// to the catalogues, as they hold every template. Code off a request's
// path (mail) uses Text.
func (l *Localizer) T(key string, args ...any) string {
	text, err := l.Text(key, args...)
	if err != nil {
		panic(err)
	}
	return text
}

// HTML is Text for a message that holds markup of its own (<strong>, a
// link to one of our pages): the catalogue's markup is kept and every
// value but an integer is written as text and escaped. A value whose name
// ends in URL must be an http or https URL, as it may stand in an href.
func (l *Localizer) HTML(key string, args ...any) (template.HTML, error) {
	escaped := make([]any, len(args))
	copy(escaped, args)
	start := len(args) % 2 // past the count, if there is one
	for i := start; i+1 < len(args); i += 2 {
		name, _ := args[i].(string)
		switch args[i+1].(type) {
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
			continue
		}
		v := fmt.Sprint(args[i+1])
		if strings.HasSuffix(name, "URL") {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
				return "", fmt.Errorf("message %q: %s %q is not an http(s) URL", key, name, v)
			}
		}
		escaped[i+1] = template.HTMLEscapeString(v)
	}
	text, err := l.Text(key, escaped...)
	return template.HTML(text), err // the catalogue's markup, the values escaped above
}

// messageData splits Text's arguments into the plural count and the
// message's data.
func messageData(args []any) (any, map[string]any, error) {
	data := map[string]any{}
	var count any
	if len(args)%2 == 1 {
		switch n := args[0].(type) {
		case int, int8, int16, int32, int64:
			count, data["Count"] = n, n
		default:
			return nil, nil, fmt.Errorf("a lone first argument is the plural count, an integer, not %T", args[0])
		}
		args = args[1:]
	}
	for i := 0; i < len(args); i += 2 {
		name, ok := args[i].(string)
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("argument %d names no value: want a name, then its value", i)
		}
		data[name] = args[i+1]
	}
	return count, data, nil
}

// Funcs are the template functions of l's language, for html/template
// and text/template alike:
//
//	{{t "key" [count] ["Name" value]…}}   a message (escaped in HTML)
//	{{th "key" …}}                         a message with markup of its own
//	{{lang}}                               the language code
//	{{date .T}} {{weekdate .T}} {{datetime .T}}
//	{{money minor currency}}
func (l *Localizer) Funcs() map[string]any {
	return map[string]any{
		"t":        l.Text,
		"th":       l.HTML,
		"lang":     l.Language,
		"date":     l.Date,
		"weekdate": l.WeekDate,
		"datetime": l.DateTime,
		"money":    l.Money,
	}
}
