package web

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/i18n"
)

// The embeddable boxes: /embed/join (become a patron) and /embed/vote
// (the open round), small pages for an <iframe> on the newsroom's article
// pages (docs/embed.md). They load nothing from elsewhere, work without
// JavaScript (their forms and links open in the top window, where Stripe
// Checkout and the vote page may run), and may be framed only by the
// origins in EMBED_ALLOWED_ORIGINS.

//go:embed templates/embed/*.html
var embedFiles embed.FS

// parseEmbeds parses the boxes once for each language, as parsePages does
// the pages.
func parseEmbeds(catalog *i18n.Catalog) (map[string]map[string]*template.Template, error) {
	out := map[string]map[string]*template.Template{}
	for _, lang := range catalog.Languages() {
		out[lang] = map[string]*template.Template{}
		for _, name := range []string{"join.html", "vote.html"} {
			t, err := template.New(name).Funcs(catalog.In(lang).Funcs()).ParseFS(embedFiles, "templates/embed/layout.html", "templates/embed/"+name)
			if err != nil {
				return nil, err
			}
			out[lang][name] = t
		}
	}
	return out, nil
}

// embedPolicy is the boxes' Content-Security-Policy: the pages' own, but
// framable by the allowed origins, and with nothing from elsewhere.
func (s *Server) embedPolicy() string {
	ancestors := "'none'"
	if len(s.embedOrigins) > 0 {
		ancestors = strings.Join(s.embedOrigins, " ")
	}
	return "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors " + ancestors +
		"; form-action " + s.formAction() + "; base-uri 'none'; object-src 'none'"
}

func (s *Server) renderEmbed(c *gin.Context, name string, data pageData) {
	data.Newsroom = s.newsroom
	if strings.HasPrefix(s.customCSS, "/") {
		data.CSSURL = s.customCSS // the newsroom's stylesheet when it is served from here; nothing from elsewhere
	}
	loc := s.loc(c)
	var buf bytes.Buffer
	if err := s.embeds[loc.Language()][name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.logger.ErrorContext(c.Request.Context(), "render page", "page", "embed/"+name, "language", loc.Language(), "err", err)
		c.String(http.StatusInternalServerError, loc.T("error.render"))
		return
	}
	c.Header("Content-Security-Policy", s.embedPolicy())
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Language", loc.Language())
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}

// embedJoin is the "become a patron" box: each tier's monthly price in
// the currency asked for (the first offered otherwise), an email field
// unless the reader is signed in, and a button to Stripe Checkout.
func (s *Server) embedJoin(c *gin.Context) {
	d, err := s.joinDataFor(c, c.Query("currency"), c.Query("interval"))
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.renderEmbed(c, "join.html", pageData{Title: s.loc(c).T("nav.join"), Join: &d})
}

// embedVote is the open round: its topics, their counts when the round
// shows them, and a link to vote.
func (s *Server) embedVote(c *gin.Context) {
	if s.voteDisabled(c) {
		return
	}
	d, err := s.voteDataFor(c)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.renderEmbed(c, "vote.html", pageData{Title: s.loc(c).T("vote.heading"), Vote: &d})
}
