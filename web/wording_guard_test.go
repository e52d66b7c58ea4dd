package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Pages find an error's sentence by its English (wording.go). Each wording
// must still meet a text the code writes: if a domain message is
// reworded, its wording stops matching and pages would fall back to a
// general sentence without a word. The texts are the string literals, and
// + chains of them, of every non-test Go file in the module but
// wording.go, with their format verbs filled by sample values.
func TestEveryWordingMeetsATextTheCodeWrites(t *testing.T) {
	literals := codeLiterals(t, "..")
	if len(literals) < 500 {
		t.Fatalf("read %d string literals from the module: the walk went wrong", len(literals))
	}
	for _, w := range append(problemWordings, errorWordings...) {
		if !anyLiteralMeets(w.english, literals) {
			t.Errorf("no text in the code meets %s (%s): the domain's words changed; change the wording with them", w.key, w.english)
		}
	}
}

// codeLiterals are the string literals of the module's non-test Go files,
// but for wording.go's (its regexps would meet themselves).
func codeLiterals(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || filepath.Base(path) == "wording.go" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				// "must be from " + min + " to " + max: one text, its
				// operands that are not literals taken as verbs.
				if text, ok := concatenation(n); ok {
					out = append(out, text)
					return false
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if s, err := strconv.Unquote(n.Value); err == nil {
						out = append(out, s)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// concatenation is a + chain holding a string literal, as a format string
// whose verbs stand for the other operands.
func concatenation(e *ast.BinaryExpr) (string, bool) {
	if e.Op != token.ADD {
		return "", false
	}
	var b strings.Builder
	hasLiteral := false
	var walk func(x ast.Expr)
	walk = func(x ast.Expr) {
		switch x := x.(type) {
		case *ast.BinaryExpr:
			if x.Op == token.ADD {
				walk(x.X)
				walk(x.Y)
				return
			}
		case *ast.ParenExpr:
			walk(x.X)
			return
		case *ast.BasicLit:
			if s, err := strconv.Unquote(x.Value); err == nil && x.Kind == token.STRING {
				b.WriteString(strings.ReplaceAll(s, "%", "%%"))
				hasLiteral = true
				return
			}
		}
		b.WriteString("%v")
	}
	walk(e)
	return b.String(), hasLiteral
}

var formatVerb = regexp.MustCompile(`%[-+# 0]*[0-9]*(?:\.[0-9]+)?[dsvq]`)

// verbSamples are what a format verb may stand for in a message.
var verbSamples = []string{"1", "EUR", "month", "year", "en, uk", "top_x", "5 minutes", "EUR 10.00"}

// anyLiteralMeets reports whether a literal, its verbs filled with some
// choice of samples, matches english. Only literals whose fixed words all
// appear in the wording are tried.
func anyLiteralMeets(english *regexp.Regexp, literals []string) bool {
	plain := strings.ReplaceAll(english.String(), `\`, "")
	for _, lit := range literals {
		fixed := formatVerb.Split(lit, -1)
		if len(fixed) == 1 {
			if english.MatchString(strings.ReplaceAll(lit, "%%", "%")) {
				return true
			}
			continue
		}
		if wordsIn(fixed, plain) && fills(english, fixed, "") {
			return true
		}
	}
	return false
}

var digits = regexp.MustCompile(`[0-9]+`)

// wordsIn reports whether the fixed parts (what is between verbs and
// numbers) have a word of three letters or more, all of them in the
// wording: only such texts are worth filling.
func wordsIn(fixed []string, plain string) bool {
	anchored := false
	for _, f := range fixed {
		for _, part := range digits.Split(strings.ReplaceAll(f, "%%", "%"), -1) {
			if len(strings.TrimSpace(part)) < 3 {
				continue
			}
			if !strings.Contains(plain, part) {
				return false
			}
			anchored = true
		}
	}
	return anchored
}

// fills tries every choice of samples for the verbs between fixed parts.
func fills(english *regexp.Regexp, fixed []string, sofar string) bool {
	if len(fixed) == 1 {
		return english.MatchString(strings.ReplaceAll(sofar+fixed[0], "%%", "%"))
	}
	for _, s := range verbSamples {
		if fills(english, fixed[1:], sofar+fixed[0]+s) {
			return true
		}
	}
	return false
}
