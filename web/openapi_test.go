package web

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/patronage/patronage/docs"
)

var ginParam = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// TestOpenAPIDescribesEveryRoute holds docs/openapi.yaml and the routes Gin
// registers to each other: a route missing from the document, or a
// documented route that does not exist, fails.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("docs/openapi.yaml does not parse: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}

	s, _ := newTestServer(t)
	registered := map[string]bool{}
	for _, r := range s.Routes() {
		registered[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}

	var missing, stale []string
	for route := range registered {
		if !documented[route] {
			missing = append(missing, route)
		}
	}
	for route := range documented {
		if !registered[route] {
			stale = append(stale, route)
		}
	}
	slices.Sort(missing)
	slices.Sort(stale)
	for _, r := range missing {
		t.Errorf("route %s is registered but not in docs/openapi.yaml", r)
	}
	for _, r := range stale {
		t.Errorf("docs/openapi.yaml documents %s, which no route serves", r)
	}
}

func TestTheServedDocumentIsTheOneInTheRepository(t *testing.T) {
	s, _ := newTestServer(t)
	rec := do(s.Handler(), "GET", "/api/v1/openapi.yaml", "", nil)
	if rec.Code != 200 || rec.Body.String() != string(docs.OpenAPI) {
		t.Fatalf("GET /api/v1/openapi.yaml = %d, want the embedded document", rec.Code)
	}
}
