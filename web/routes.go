package web

// routes is the table of contents of Patronage's HTTP API: every route is
// registered here and nowhere else.
func (s *Server) routes() {
	e := s.engine

	// Operations.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.serveMetrics)

	// The API's own description.
	e.GET("/api/v1/openapi.yaml", s.openAPI)
}
