// Package i18n owns the wording of Patronage's pages and mail in every
// language it speaks: the message catalogues (locales/active.<code>.toml,
// one file a language), which language a reader gets, and how numbers,
// money and dates read in it. Adding a language is adding a file; nothing
// here lists languages. It decides nothing about what to say — callers name
// message keys — and keeps no state but the catalogues it was built from.
package i18n

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"github.com/pelletier/go-toml/v2"
	"golang.org/x/text/language"
)

//go:embed locales/*.toml
var locales embed.FS

// catalogueName is the file of one language, e.g. locales/active.uk.toml.
const (
	cataloguePrefix = "active."
	catalogueSuffix = ".toml"
)

// Languages lists the languages there are catalogues for, by code ("en",
// "uk"), sorted: the files under locales/ decide.
func Languages() []string {
	names, _ := fs.Glob(locales, "locales/"+cataloguePrefix+"*"+catalogueSuffix) // the pattern is valid
	codes := make([]string, 0, len(names))
	for _, name := range names {
		codes = append(codes, strings.TrimSuffix(strings.TrimPrefix(path.Base(name), cataloguePrefix), catalogueSuffix))
	}
	slices.Sort(codes)
	return codes
}

// Catalog is every language's messages, and the newsroom's default
// language for readers none of them suits.
type Catalog struct {
	bundle   *goi18n.Bundle
	codes    []string       // sorted
	tags     []language.Tag // in the order of codes
	matcher  language.Matcher
	fallback string
	messages map[string]map[string]*goi18n.Message // by language, then key
	byCode   map[string]*Localizer
}

// New reads every catalogue. defaultLanguage (DEFAULT_LANGUAGE) must be
// one of them.
func New(defaultLanguage string) (*Catalog, error) {
	c := &Catalog{messages: map[string]map[string]*goi18n.Message{}, byCode: map[string]*Localizer{}}
	for _, code := range Languages() {
		tag, err := language.Parse(code)
		if err != nil || tag.String() != code {
			return nil, fmt.Errorf("catalogue %s%s%s: %q is not a language code as BCP 47 writes it", cataloguePrefix, code, catalogueSuffix, code)
		}
		c.codes, c.tags = append(c.codes, code), append(c.tags, tag)
	}
	fallback, ok := c.Supported(defaultLanguage)
	if !ok {
		return nil, fmt.Errorf("default language %q has no catalogue (there are: %s)", defaultLanguage, strings.Join(c.codes, ", "))
	}
	c.fallback = fallback
	c.bundle = goi18n.NewBundle(language.MustParse(fallback))
	c.bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	for _, code := range c.codes {
		name := "locales/" + cataloguePrefix + code + catalogueSuffix
		data, err := fs.ReadFile(locales, name)
		if err != nil {
			return nil, fmt.Errorf("read catalogue: %w", err)
		}
		file, err := c.bundle.ParseMessageFileBytes(data, name)
		if err != nil {
			return nil, fmt.Errorf("parse catalogue %s: %w", name, err)
		}
		c.messages[code] = map[string]*goi18n.Message{}
		for _, m := range file.Messages {
			c.messages[code][m.ID] = m
		}
	}
	c.matcher = language.NewMatcher(c.tags)
	var problems []error
	for _, code := range c.codes {
		l := &Localizer{code: code, loc: goi18n.NewLocalizer(c.bundle, code)}
		c.byCode[code] = l
		problems = append(problems, c.checkKeys(code), l.loadFormats())
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return c, nil
}

// checkKeys holds a language's catalogue to the default one's keys: a
// catalogue is whole, so no reader ever meets a key that has no wording
// in their language.
func (c *Catalog) checkKeys(code string) error {
	var missing, extra []string
	for key := range c.messages[c.fallback] {
		if c.messages[code][key] == nil {
			missing = append(missing, key)
		}
	}
	for key := range c.messages[code] {
		if c.messages[c.fallback][key] == nil {
			extra = append(extra, key)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	var problems []error
	if len(missing) > 0 {
		problems = append(problems, fmt.Errorf("catalogue %s lacks %s", code, strings.Join(missing, ", ")))
	}
	if len(extra) > 0 {
		problems = append(problems, fmt.Errorf("catalogue %s has keys the %s one has not: %s", code, c.fallback, strings.Join(extra, ", ")))
	}
	return errors.Join(problems...)
}

// Languages lists the catalogue's languages by code, sorted.
func (c *Catalog) Languages() []string { return slices.Clone(c.codes) }

// Default is the newsroom's default language.
func (c *Catalog) Default() string { return c.fallback }

// Supported reports whether there is a catalogue for code, and returns the
// code as the catalogue spells it ("UK" is "uk"; "uk-UA" has no catalogue
// of its own).
func (c *Catalog) Supported(code string) (string, bool) {
	tag, err := language.Parse(strings.TrimSpace(code))
	if err != nil {
		return "", false
	}
	i := slices.Index(c.codes, tag.String())
	if i < 0 {
		return "", false
	}
	return c.codes[i], true
}

// Choose is the language a reader gets: their own setting when it has a
// catalogue, else the best match of their browser's Accept-Language among
// the catalogues, else the default language.
func (c *Catalog) Choose(setting, acceptLanguage string) string {
	if code, ok := c.Supported(setting); ok {
		return code
	}
	if prefs, _, err := language.ParseAcceptLanguage(acceptLanguage); err == nil && len(prefs) > 0 {
		if _, i, conf := c.matcher.Match(prefs...); conf != language.No {
			return c.codes[i]
		}
	}
	return c.fallback
}

// In is the localizer of a language; one without a catalogue (or "") gets
// the default language's.
func (c *Catalog) In(code string) *Localizer {
	if code, ok := c.Supported(code); ok {
		return c.byCode[code]
	}
	return c.byCode[c.fallback]
}

// Keys lists the message keys of a language's catalogue, sorted.
func (c *Catalog) Keys(code string) []string {
	keys := make([]string, 0, len(c.messages[code]))
	for k := range c.messages[code] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Forms lists the CLDR plural forms a message of a language spells out
// ("one", "few", "many", "other"); a message without plurals has "other"
// only.
func (c *Catalog) Forms(code, key string) []string {
	m := c.messages[code][key]
	if m == nil {
		return nil
	}
	var forms []string
	for _, f := range []struct{ name, text string }{{"zero", m.Zero}, {"one", m.One}, {"two", m.Two}, {"few", m.Few}, {"many", m.Many}, {"other", m.Other}} {
		if f.text != "" {
			forms = append(forms, f.name)
		}
	}
	return forms
}

// Has reports whether the default language's catalogue has key (and so,
// as New checks, every catalogue).
func (c *Catalog) Has(key string) bool { return c.messages[c.fallback][key] != nil }

type languageKey struct{}

// WithLanguage carries the language a request was answered in, for mail
// sent on its behalf to a member who has not chosen one.
func WithLanguage(ctx context.Context, code string) context.Context {
	return context.WithValue(ctx, languageKey{}, code)
}

// LanguageOf is the language WithLanguage put in ctx, or "".
func LanguageOf(ctx context.Context) string {
	code, _ := ctx.Value(languageKey{}).(string)
	return code
}
