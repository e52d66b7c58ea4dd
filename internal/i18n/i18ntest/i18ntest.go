// Package i18ntest holds templates and code to the message catalogues, in
// tests: every message key they name is in the catalogues, and no template
// holds wording of its own. It is imported only by tests.
package i18ntest

import (
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template/parse"
	"unicode"

	"github.com/patronage/patronage/internal/i18n"
)

// Catalog is the catalogues with English as the default language.
func Catalog(t testing.TB) *i18n.Catalog {
	t.Helper()
	c, err := i18n.New("en")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// messageFuncs are the template functions that take a message key first.
var messageFuncs = map[string]bool{"t": true, "th": true}

// TemplateKeys fails t for every t or th call in the trees whose key is
// not a string literal (a key the tests cannot see) or not in cat, and
// returns the keys named.
func TemplateKeys(t testing.TB, cat *i18n.Catalog, trees ...*parse.Tree) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	for _, tree := range trees {
		if tree == nil || tree.Root == nil {
			continue
		}
		eachCommand(tree.Root, func(cmd *parse.CommandNode) {
			id, ok := cmd.Args[0].(*parse.IdentifierNode)
			if !ok || !messageFuncs[id.Ident] {
				return
			}
			if len(cmd.Args) < 2 {
				t.Errorf("%s: %s names no message", tree.ParseName, cmd)
				return
			}
			key, ok := cmd.Args[1].(*parse.StringNode)
			if !ok {
				t.Errorf("%s: %s: the key must be a string literal, so the tests can hold it to the catalogues", tree.ParseName, cmd)
				return
			}
			keys[key.Text] = true
			if !cat.Has(key.Text) {
				t.Errorf("%s: %s: no message %q in the catalogues", tree.ParseName, cmd, key.Text)
			}
		})
	}
	return keys
}

// eachCommand calls fn for every command of every pipeline under n.
func eachCommand(n parse.Node, fn func(*parse.CommandNode)) {
	var pipe func(p *parse.PipeNode)
	pipe = func(p *parse.PipeNode) {
		if p == nil {
			return
		}
		for _, cmd := range p.Cmds {
			fn(cmd)
			for _, arg := range cmd.Args {
				if sub, ok := arg.(*parse.PipeNode); ok {
					pipe(sub)
				}
			}
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			eachCommand(c, fn)
		}
	case *parse.ActionNode:
		pipe(n.Pipe)
	case *parse.TemplateNode:
		pipe(n.Pipe)
	case *parse.IfNode:
		pipe(n.Pipe)
		eachCommand(n.List, fn)
		eachCommand(n.ElseList, fn)
	case *parse.RangeNode:
		pipe(n.Pipe)
		eachCommand(n.List, fn)
		eachCommand(n.ElseList, fn)
	case *parse.WithNode:
		pipe(n.Pipe)
		eachCommand(n.List, fn)
		eachCommand(n.ElseList, fn)
	}
}

// skeleton is a template's text with every action as a NUL: markup and
// literal wording, with the values left out.
func skeleton(n parse.Node, b *strings.Builder) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			skeleton(c, b)
		}
	case *parse.TextNode:
		b.Write(n.Text)
	case *parse.ActionNode, *parse.TemplateNode:
		b.WriteByte(0)
	case *parse.IfNode:
		skeleton(n.List, b)
		skeleton(n.ElseList, b)
	case *parse.RangeNode:
		skeleton(n.List, b)
		skeleton(n.ElseList, b)
	case *parse.WithNode:
		skeleton(n.List, b)
		skeleton(n.ElseList, b)
	}
}

var (
	tag = regexp.MustCompile(`<[^>]*>`)
	// readAttr are the attributes a person reads (or hears).
	readAttr = regexp.MustCompile(`(?i)\s(title|alt|placeholder|aria-label|aria-description|aria-placeholder|aria-roledescription|aria-valuetext)\s*=\s*"([^"]*)"`)
	// notWording is an attribute value that is no one's language: a URL's
	// scheme as an example of what to type.
	notWording = regexp.MustCompile(`^https?://$`)
)

// NoWording fails t for any word a template writes itself rather than
// take from the catalogue: letters in its text outside tags and actions,
// and in the attributes people read. isHTML says whether the trees are
// markup (text templates have no tags to skip).
func NoWording(t testing.TB, isHTML bool, trees ...*parse.Tree) {
	t.Helper()
	for _, tree := range trees {
		if tree == nil || tree.Root == nil {
			continue
		}
		var b strings.Builder
		skeleton(tree.Root, &b)
		text := b.String()
		if isHTML {
			for _, m := range tag.FindAllString(text, -1) {
				for _, a := range readAttr.FindAllStringSubmatch(m, -1) {
					if hasLetter(a[2]) && !notWording.MatchString(a[2]) {
						t.Errorf("%s: attribute %s=%q is wording of the template's own: take it from the catalogue", tree.ParseName, a[1], a[2])
					}
				}
			}
			text = html.UnescapeString(tag.ReplaceAllString(text, "\x00"))
		}
		for _, piece := range strings.Split(text, "\x00") {
			if hasLetter(piece) {
				t.Errorf("%s: %q is wording of the template's own: take it from the catalogue", tree.ParseName, strings.TrimSpace(piece))
			}
		}
	}
}

func hasLetter(s string) bool { return strings.IndexFunc(s, unicode.IsLetter) >= 0 }

// goKey is a message key a Go call names whole: loc.T("key", …),
// l.Text("key"), l.HTML("key"). A key made up at run time ("field." +
// name) is the caller's to enumerate in its own test.
var goKey = regexp.MustCompile(`\.(?:T|Text|HTML)\("([^"]+)"\s*[,)]`)

// SourceKeys fails t for every message key the non-test Go files of dir
// name that is not in cat, and returns them.
func SourceKeys(t testing.TB, cat *i18n.Catalog, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goKey.FindAllStringSubmatch(string(src), -1) {
			keys[m[1]] = true
			if !cat.Has(m[1]) {
				t.Errorf("%s: no message %q in the catalogues", f, m[1])
			}
		}
	}
	return keys
}
