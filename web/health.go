package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patronage/patronage/docs"
)

// healthz says the process is up; it touches no dependency.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Error  *errorDetail      `json:"error,omitempty"`
}

// readyz says whether the database, its read replica when there is one,
// and Redis each answer within a second.
func (s *Server) readyz(c *gin.Context) {
	checks := map[string]func(context.Context) error{
		"database": s.db.PingContext,
		"redis":    func(ctx context.Context) error { return s.redis.Client.Ping(ctx).Err() },
	}
	if s.readDB != nil {
		checks["read_database"] = s.readDB.PingContext
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := readiness{Status: "ok", Checks: map[string]string{}}
	var down []string
	for name, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
			defer cancel()
			err := check(ctx)
			result := "ok"
			if err != nil {
				result = "down"
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
					result = "timeout"
				}
				s.logger.WarnContext(c.Request.Context(), "readiness check failed", "dependency", name, "err", err)
			}
			mu.Lock()
			defer mu.Unlock()
			out.Checks[name] = result
			if err != nil {
				down = append(down, name)
			}
		}()
	}
	wg.Wait()
	if len(down) > 0 {
		out.Status = "unavailable"
		msg := "Not ready: "
		slices.Sort(down)
		for i, name := range down {
			if i > 0 {
				msg += " and "
			}
			msg += name
		}
		out.Error = &errorDetail{Code: "unavailable", Message: msg + " did not answer within 1s."}
		c.JSON(http.StatusServiceUnavailable, out)
		return
	}
	c.JSON(http.StatusOK, out)
}

// serveMetrics exposes Prometheus metrics, behind a bearer token when
// METRICS_TOKEN is set.
func (s *Server) serveMetrics(c *gin.Context) {
	if s.metricsToken != "" {
		want := "Bearer " + s.metricsToken
		if subtle.ConstantTimeCompare([]byte(c.GetHeader("Authorization")), []byte(want)) != 1 {
			writeError(c, http.StatusUnauthorized, "unauthenticated", "Metrics need the bearer token set in METRICS_TOKEN.", nil)
			return
		}
	}
	promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}).ServeHTTP(c.Writer, c.Request)
}

// openAPI serves the API description that ships inside the binary.
func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", docs.OpenAPI)
}
