// Package docs carries Patronage's API description into the binary, so the
// server can serve it and tests can hold the routes to it.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
